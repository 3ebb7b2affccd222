namespace ModelAsData.IntegrationTests.Hostile;

/// <summary>
/// What each role reads is decided per column (docs/SECURITY.md, "What each role reads"): every column of every table
/// and view in schema mad has a decided set of roles that may SELECT it. 008's column grants were computed from the
/// catalog when it ran, so a column a later migration adds has no grant for mad_user unless that migration decides
/// one; and a table-wide GRANT would show it to everyone. Either way the new column fails here until it is listed.
/// Row security (mad.jobs, mad.requests) and the gates of mad.outbox narrow the rows further; this is the columns.
/// </summary>
public sealed class ColumnGrantTests(PostgresDatabase database) : DatabaseTests(database)
{
    private const string All = "mad_admin mad_sidecar mad_user";
    private const string AdminSidecar = "mad_admin mad_sidecar";
    private const string Sidecar = "mad_sidecar";
    private const string Nobody = "";

    private static readonly Dictionary<string, string> Expected = new(StringComparer.Ordinal)
    {
        ["alias_history.id"] = All,
        ["alias_history.model"] = All,
        ["alias_history.alias"] = All,
        ["alias_history.from_version"] = All,
        ["alias_history.to_version"] = All,
        ["alias_history.kind"] = All,
        ["alias_history.moved_by"] = All,
        ["alias_history.moved_at"] = All,
        ["alias_history.reason"] = All,

        ["aliases.model"] = All,
        ["aliases.alias"] = All,
        ["aliases.version"] = All,
        ["aliases.updated_by"] = All,
        ["aliases.updated_at"] = All,

        // Edge devices (023): the fleet's registrations (mad_device, not listed here, reads them too).
        ["outcomes.prediction_table"] = "mad_admin mad_user",
        ["outcomes.source"] = "mad_admin mad_user",
        ["outcomes.key_columns"] = "mad_admin mad_user",
        ["outcomes.label_column"] = "mad_admin mad_user",
        ["outcomes.observed_at_column"] = "mad_admin mad_user",
        ["outcomes.created_by"] = "mad_admin mad_user",
        ["outcomes.created_at"] = "mad_admin mad_user",
        // 051: which of a table or a model's online traffic a binding is for (as visible as prediction_table).
        ["outcomes.bound_table"] = "mad_admin mad_user",
        ["outcomes.online_model"] = "mad_admin mad_user",
        // 027_3: which deployments ask for the outcome gate (metric and margin, no label).
        ["outcome_gates.model"] = All,
        ["outcome_gates.alias"] = All,
        ["outcome_gates.metric"] = All,
        ["outcome_gates.margin"] = All,
        ["outcome_gates.min_labeled"] = All,
        ["outcome_gates.updated_by"] = All,
        ["outcome_gates.updated_at"] = All,
        ["outcome_floors.prediction_table"] = All, // 042_1: a metric's floor, no label
        ["outcome_floors.metric"] = All,
        ["outcome_floors.floor"] = All,
        ["outcome_floors.window"] = All,
        ["outcome_floors.min_labeled"] = All,
        ["outcome_floors.updated_by"] = All,
        ["outcome_floors.updated_at"] = All,
        ["devices.id"] = "mad_admin mad_user",
        ["devices.owner"] = "mad_admin mad_user",
        ["devices.created_at"] = "mad_admin mad_user",
        ["devices.last_pull_at"] = "mad_admin mad_user",
        ["devices.last_push_at"] = "mad_admin mad_user",
        ["devices.versions"] = "mad_admin mad_user",
        // Pushed predictions: as readable as the central ones' reports need; devices only add (ingest_predictions).
        ["edge_predictions.device"] = "mad_admin mad_user",
        ["edge_predictions.prediction_table"] = "mad_admin mad_user",
        ["edge_predictions.key"] = "mad_admin mad_user",
        ["edge_predictions.model"] = "mad_admin mad_user",
        ["edge_predictions.version"] = "mad_admin mad_user",
        ["edge_predictions.arm"] = "mad_admin mad_user",
        ["edge_predictions.outputs"] = "mad_admin mad_user",
        ["edge_predictions.scored_at"] = "mad_admin mad_user",
        ["edge_predictions.pushed_at"] = "mad_admin mad_user",
        // Pushed outcomes (029_2): row-secured as edge_predictions; devices only add (finish_push_outcomes).
        ["edge_outcomes.device"] = "mad_admin mad_user",
        ["edge_outcomes.prediction_table"] = "mad_admin mad_user",
        ["edge_outcomes.key"] = "mad_admin mad_user",
        ["edge_outcomes.label"] = "mad_admin mad_user",
        ["edge_outcomes.observed_at"] = "mad_admin mad_user",
        ["edge_outcomes.pushed_at"] = "mad_admin mad_user",
        ["edge_outcomes.served_key"] = "mad_admin mad_user",
        // Pushed profile counts (047): as profile_counts, mad_admin's (and a device's own, mad_device, not listed here).
        ["edge_profile_counts.device"] = "mad_admin",
        ["edge_profile_counts.prediction_table"] = "mad_admin",
        ["edge_profile_counts.model"] = "mad_admin",
        ["edge_profile_counts.version"] = "mad_admin",
        ["edge_profile_counts.window_start"] = "mad_admin",
        ["edge_profile_counts.kind"] = "mad_admin",
        ["edge_profile_counts.column_name"] = "mad_admin",
        ["edge_profile_counts.bin"] = "mad_admin",
        ["edge_profile_counts.count"] = "mad_admin",
        ["edge_profile_counts.pushed_at"] = "mad_admin",

        // Deployments (017): as readable as the aliases they extend.
        ["deployment_gates.name"] = All,
        ["deployment_gates.gate"] = All,
        ["deployment_gates.description"] = All,
        ["drift_gates.model"] = All,
        ["drift_gates.alias"] = All,
        ["drift_gates.set_by"] = All,
        ["drift_gates.set_at"] = All,

        ["deployment_history.id"] = All,
        ["deployment_history.model"] = All,
        ["deployment_history.alias"] = All,
        ["deployment_history.kind"] = All,
        ["deployment_history.version"] = All,
        ["deployment_history.canary_version"] = All,
        ["deployment_history.canary_percent"] = All,
        ["deployment_history.shadow_version"] = All,
        ["deployment_history.shadow_percent"] = All,
        ["deployment_history.seed"] = All,
        ["deployment_history.changed_by"] = All,
        ["deployment_history.changed_at"] = All,
        ["deployment_history.reason"] = All,

        ["deployments.model"] = All,
        ["deployments.alias"] = All,
        ["deployments.seed"] = All,
        ["deployments.canary_version"] = All,
        ["deployments.canary_percent"] = All,
        ["deployments.steps"] = All,
        ["deployments.step_every"] = All,
        ["deployments.next_step_at"] = All,
        ["deployments.shadow_version"] = All,
        ["deployments.shadow_percent"] = All,
        ["deployments.updated_by"] = All,
        ["deployments.updated_at"] = All,

        // The report counts rows of every prediction table served through a deployment (017).
        ["deployment_report.model"] = "mad_admin",
        ["deployment_report.alias"] = "mad_admin",
        ["deployment_report.arm"] = "mad_admin",
        ["deployment_report.version"] = "mad_admin",
        ["deployment_report.percent"] = "mad_admin",
        ["deployment_report.rows_scored"] = "mad_admin",
        ["deployment_report.rows_failed"] = "mad_admin",
        ["deployment_report.error_rate"] = "mad_admin",
        ["deployment_report.steps"] = "mad_admin",
        ["deployment_report.next_step_at"] = "mad_admin",
        ["deployment_report.seed"] = "mad_admin",
        ["deployment_report.share_equal"] = "mad_admin",
        ["deployment_report.mean_absolute_difference"] = "mad_admin",
        ["deployment_report.shadow_error"] = "mad_admin",
        ["deployment_report.legacy_share_equal"] = "mad_admin",  // 025_3
        ["deployment_report.legacy_mean_absolute_difference"] = "mad_admin",
        ["deployment_report.rows_compared"] = "mad_admin",  // 043_2
        // Baselines hold their source's quantiles and categories; counts, a table's traffic (018): users see them through mad.drift.
        ["baselines.model"] = AdminSidecar,
        ["baselines.version"] = AdminSidecar,
        ["baselines.kind"] = AdminSidecar,
        ["baselines.column_name"] = AdminSidecar,
        ["baselines.type"] = AdminSidecar,
        ["baselines.edges"] = AdminSidecar,
        ["baselines.categories"] = AdminSidecar,
        ["baselines.counts"] = AdminSidecar,
        ["baselines.null_count"] = AdminSidecar,
        ["baselines.spread"] = AdminSidecar,
        ["baselines.source"] = AdminSidecar,
        ["baselines.created_by"] = AdminSidecar,
        ["baselines.created_at"] = AdminSidecar,
        ["baselines.reference"] = AdminSidecar,

        ["profile_counts.prediction_table"] = AdminSidecar,
        ["profile_counts.version"] = AdminSidecar,
        ["profile_counts.window_start"] = AdminSidecar,
        ["profile_counts.kind"] = AdminSidecar,
        ["profile_counts.column_name"] = AdminSidecar,
        ["profile_counts.bin"] = AdminSidecar,
        ["profile_counts.count"] = AdminSidecar,

        // Read by definer functions only (007).
        ["carried_grants.job_id"] = Nobody,
        ["carried_grants.ordinal"] = Nobody,
        ["carried_grants.grantor"] = Nobody,
        ["carried_grants.statement"] = Nobody,

        // Read by definer functions only (009).
        ["http_tokens.id"] = Nobody,
        ["http_tokens.label"] = Nobody,
        ["http_tokens.role"] = Nobody,
        ["http_tokens.token_sha256"] = Nobody,
        ["http_tokens.created_by"] = Nobody,
        ["http_tokens.created_at"] = Nobody,
        ["http_tokens.expires_at"] = Nobody,
        ["http_tokens.revoked_at"] = Nobody,
        ["http_tokens.revoked_by"] = Nobody,

        // Row security: a mad_user sees the jobs of its own tables (008).
        ["jobs.id"] = All,
        ["jobs.prediction_table"] = All,
        ["jobs.kind"] = All,
        ["jobs.model"] = All,
        ["jobs.version"] = All,
        ["jobs.state"] = All,
        ["jobs.build_table"] = All,
        ["jobs.tasks_total"] = All,
        ["jobs.tasks_done"] = All,
        ["jobs.rows_total"] = All,
        ["jobs.rows_done"] = All,
        ["jobs.rows_failed"] = All,
        ["jobs.error"] = All,
        ["jobs.created_by"] = All,
        ["jobs.created_at"] = All,
        ["jobs.finished_at"] = All,
        ["jobs.planned"] = All,
        ["jobs.canary_version"] = All,
        ["jobs.canary_percent"] = All,
        ["jobs.seed"] = All,
        ["jobs.shadow_version"] = All,
        ["jobs.shadow_percent"] = All,
        ["jobs.shadow_seed"] = All,
        ["jobs.shadow_rows"] = All,
        ["jobs.shadow_error"] = All,
        ["jobs.agreement_percent"] = All,  // 043_2: the canary agreement's sample and sums (no key, no output value)
        ["jobs.agreement_rows"] = All,
        ["jobs.agreement_equal"] = All,
        ["jobs.agreement_differences"] = All,

        // mad_user: every column but the blob.
        ["model_versions.model"] = All,
        ["model_versions.version"] = All,
        ["model_versions.onnx"] = AdminSidecar,
        ["model_versions.sha256"] = All,
        ["model_versions.size_bytes"] = All,
        ["model_versions.status"] = All,
        ["model_versions.reason"] = All,
        ["model_versions.signature"] = All,
        ["model_versions.metadata"] = All,
        ["model_versions.created_by"] = All,
        ["model_versions.created_at"] = All,
        ["model_versions.validated_by"] = All,
        ["model_versions.validated_at"] = All,
        // Large models (030): a count, as size_bytes; the chunks' bytes as the onnx column.
        ["model_versions.chunks"] = All,
        ["model_chunks.model"] = AdminSidecar,
        ["model_chunks.version"] = AdminSidecar,
        ["model_chunks.n"] = AdminSidecar,
        ["model_chunks.bytes"] = AdminSidecar,

        ["models.name"] = All,
        ["models.last_version"] = All,
        ["models.created_by"] = All,
        ["models.created_at"] = All,
        ["models.updated_at"] = All,

        // The view: every role may SELECT it; its branches show a table's keys only to readers of the source (008).
        ["outbox.prediction_table"] = All,
        ["outbox.id"] = All,
        ["outbox.key"] = All,
        ["outbox.enqueued_at"] = All,

        ["prediction_log.predicted_at"] = AdminSidecar,
        ["prediction_log.door"] = AdminSidecar,
        ["prediction_log.model"] = AdminSidecar,
        ["prediction_log.version"] = AdminSidecar,
        ["prediction_log.inputs_sha256"] = AdminSidecar,
        ["prediction_log.outputs"] = AdminSidecar,
        ["prediction_log.error"] = AdminSidecar,
        ["prediction_log.request_id"] = AdminSidecar,
        ["prediction_log.sidecar"] = AdminSidecar,
        ["prediction_log.arm"] = AdminSidecar,
        ["prediction_log.key"] = AdminSidecar,       // 051: every caller's keys, as the rest of the log
        ["prediction_log.features"] = AdminSidecar,  // 051

        // stream_error(_at) not to mad_user: the owner reads it through mad.stream_lag.
        ["prediction_tables.name"] = All,
        ["prediction_tables.source"] = All,
        ["prediction_tables.key_columns"] = All,
        ["prediction_tables.key_types"] = All,
        ["prediction_tables.model"] = All,
        ["prediction_tables.features"] = All,
        ["prediction_tables.feature_columns"] = All,
        ["prediction_tables.columns"] = All,
        ["prediction_tables.created_by"] = All,
        ["prediction_tables.owner"] = All,
        ["prediction_tables.created_at"] = All,
        ["prediction_tables.refreshed_at"] = All,
        ["prediction_tables.refreshed_version"] = All,
        ["prediction_tables.rows_scored"] = All,
        ["prediction_tables.rows_failed"] = All,
        ["prediction_tables.last_job"] = All,
        ["prediction_tables.watched"] = All,
        ["prediction_tables.stream_error"] = AdminSidecar,
        ["prediction_tables.stream_error_at"] = AdminSidecar,
        ["prediction_tables.shadow_error"] = AdminSidecar,  // 025: as stream_error (may quote a source value)
        ["prediction_tables.shadow_error_at"] = AdminSidecar,
        ["prediction_tables.legacy_column"] = All,  // 025_3: names, as the binding's other columns
        ["prediction_tables.legacy_output"] = All,

        ["request_workers.sidecar"] = AdminSidecar,
        ["request_workers.ticket"] = AdminSidecar,
        ["request_workers.backend_pid"] = AdminSidecar,
        ["request_workers.armed_at"] = AdminSidecar,
        ["request_workers.life"] = AdminSidecar,

        // Row security: a role sees its own requests (005).
        ["requests.id"] = All,
        ["requests.kind"] = All,
        ["requests.reference"] = All,
        ["requests.model"] = All,
        ["requests.version"] = All,
        ["requests.features"] = All,
        ["requests.status"] = All,
        ["requests.result"] = All,
        ["requests.error"] = All,
        ["requests.error_code"] = All,
        ["requests.sidecar"] = All,
        ["requests.requested_by"] = All,
        ["requests.created_at"] = All,
        ["requests.claimed_at"] = All,
        ["requests.answered_at"] = All,
        ["requests.expires_at"] = All,
        ["requests.arm"] = All,  // as visible as requests.version (017)
        ["requests.shadow_version"] = All,  // as visible as requests.version (025)
        ["requests.key"] = All,  // the caller's own (the policy shows mad_user only their requests), 051

        // The migrator's own (its login owns it).
        ["schema_migrations.name"] = Nobody,
        ["schema_migrations.checksum"] = Nobody,
        ["schema_migrations.applied_at"] = Nobody,
        ["schema_migrations.applied_by"] = Nobody,

        ["settings.name"] = All,
        ["settings.value"] = All,
        ["settings.description"] = All,

        // mad_user sees whether a sidecar runs, not the engine's host, pid, login or info.
        ["sidecars.id"] = All,
        ["sidecars.host"] = AdminSidecar,
        ["sidecars.pid"] = AdminSidecar,
        ["sidecars.login"] = AdminSidecar,
        ["sidecars.info"] = AdminSidecar,
        ["sidecars.started_at"] = All,
        ["sidecars.heartbeat_at"] = All,
        ["sidecars.stopped_at"] = All,

        ["stream_during_refresh.job_id"] = Sidecar,
        ["stream_during_refresh.key"] = Sidecar,

        ["stream_stats.sidecar"] = All,
        ["stream_stats.prediction_table"] = All,
        ["stream_stats.rows_total"] = All,
        ["stream_stats.rows_per_second"] = All,
        ["stream_stats.reported_at"] = All,

        ["stream_wake.id"] = Sidecar,
        ["stream_wake.notify"] = Sidecar,

        // Sampled keys of the source (lo, hi) to the sidecar only; errors (they may quote source values) not to mad_user.
        ["tasks.id"] = All,
        ["tasks.job_id"] = All,
        ["tasks.ordinal"] = All,
        ["tasks.lo"] = Sidecar,
        ["tasks.hi"] = Sidecar,
        ["tasks.state"] = All,
        ["tasks.lease_token"] = All,
        ["tasks.lease_until"] = All,
        ["tasks.sidecar"] = All,
        ["tasks.attempts"] = All,
        ["tasks.rows_done"] = All,
        ["tasks.rows_failed"] = All,
        ["tasks.error"] = AdminSidecar,
        ["tasks.started_at"] = All,
        ["tasks.finished_at"] = All,

        ["version_validations.model"] = AdminSidecar,
        ["version_validations.version"] = AdminSidecar,
        ["version_validations.attempts"] = AdminSidecar,
        ["version_validations.last_sidecar"] = AdminSidecar,
        ["version_validations.last_attempt_at"] = AdminSidecar,
        ["version_validations.last_error"] = AdminSidecar,
    };

    [Fact(Timeout = 60_000)]
    public async Task Every_column_of_every_mad_table_and_view_is_readable_by_exactly_the_roles_decided_for_it()
    {
        // The roles that may SELECT the column (a table-wide grant or one on the column), PUBLIC included.
        var actual = await Database.DataSource.QueryAsync<(string Column, string Readers)>("""
            SELECT c.relname || '.' || a.attname,
                   coalesce((SELECT string_agg(r.name, ' ' ORDER BY r.name)
                             FROM unnest(ARRAY['PUBLIC', 'mad_admin', 'mad_reader', 'mad_sidecar', 'mad_user']) r(name)
                             WHERE pg_catalog.has_column_privilege(CASE WHEN r.name = 'PUBLIC' THEN 'public' ELSE r.name END, c.oid, a.attnum, 'SELECT')), '')
            FROM pg_catalog.pg_class c JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
            WHERE c.relnamespace = 'mad'::regnamespace AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
            ORDER BY c.relname, a.attnum
            """);

        var undecided = actual.Where(a => !Expected.ContainsKey(a.Column)).Select(a => $"[\"{a.Column}\"] = \"{a.Readers}\",").ToList();
        var wrong = actual.Where(a => Expected.TryGetValue(a.Column, out var e) && e != a.Readers)
            .Select(a => $"{a.Column}: expected '{Expected[a.Column]}', readable by '{a.Readers}'").ToList();
        var gone = Expected.Keys.Except(actual.Select(a => a.Column)).ToList();

        Assert.True(undecided.Count == 0, "Columns without a decided SELECT grant (decide in the migration, then add them to Expected and docs/SECURITY.md):\n" + string.Join('\n', undecided));
        Assert.True(wrong.Count == 0, string.Join("; ", wrong));
        Assert.True(gone.Count == 0, "Expected columns that do not exist: " + string.Join("; ", gone));
    }
}

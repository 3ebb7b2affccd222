namespace ModelAsData.IntegrationTests.Hostile;

/// <summary>
/// EXECUTE grants are the gate (docs/SECURITY.md): every routine in schema mad has a decided set of grantees, and a
/// new one without a decision fails here rather than shipping with PostgreSQL's default (EXECUTE for PUBLIC).
/// </summary>
public sealed class FunctionGrantTests(PostgresDatabase database) : DatabaseTests(database)
{
    private const string Admin = "mad_admin";
    private const string Callers = "mad_admin mad_user";
    private const string Sidecar = "mad_sidecar";
    private const string Nobody = "";

    private static readonly Dictionary<string, string> Expected = new(StringComparer.Ordinal)
    {
        // Admin functions.
        ["mad.push_model(text,bytea,jsonb)"] = Admin,
        // Large models (030): a chunked push, and a device's pull of a chunked version.
        ["mad.begin_push(text,bigint,integer,jsonb)"] = Admin,
        ["mad.push_chunk(text,integer,integer,bytea)"] = Admin,
        ["mad.finish_push(text,integer,text)"] = Admin,
        ["mad.device_version_chunk(text,integer,integer)"] = "mad_device",
        ["mad.set_alias(text,text,integer,text)"] = Admin,
        ["mad.rollback_alias(text,text)"] = Admin,
        ["mad.create_prediction_table(text,regclass,text[],text,jsonb)"] = Admin,
        ["mad.inputs_hash(jsonb)"] = Admin,
        ["mad.create_http_token(name,text,timestamp with time zone)"] = Admin,
        ["mad.revoke_http_token(text)"] = Admin,
        ["mad.list_http_tokens()"] = Admin,
        ["mad.deploy(text,text,integer,text)"] = Admin,
        ["mad.deploy_canary(text,text,integer,double precision,double precision[],interval,text)"] = Admin,
        ["mad.deploy_shadow(text,text,integer,double precision,text)"] = Admin,
        ["mad.promote(text,text,text)"] = Admin,
        ["mad.abort_deployment(text,text,text)"] = Admin,
        ["mad.deployment_rows(text,text)"] = Admin,
        ["mad.shadow_agreement(text,text)"] = Admin,
        ["mad.set_legacy_column(text,text,text)"] = "mad_admin mad_user",  // 025_3: the binding's owner checks inside
        ["mad.legacy_statement(text)"] = "mad_admin mad_user",  // names only
        ["mad.legacy_tables(text,text)"] = "mad_admin mad_user",
        ["mad.legacy_agreement(text)"] = "mad_admin mad_user",  // invoker: reads with the caller's rights
        ["mad.deployment_legacy(text,text)"] = "mad_admin mad_user",
        ["mad.set_drift_gate(text,text,boolean)"] = Admin,
        // Caller functions (mad_admin is not a member of mad_user, so both).
        ["mad.resolve(text,text)"] = "mad_admin mad_sidecar mad_user",
        ["mad.alias_at(text,text,timestamp with time zone)"] = Callers,
        ["mad.require_model(text)"] = Callers,
        ["mad.refresh(text)"] = Callers,
        ["mad.watch(text)"] = Callers,
        ["mad.unwatch(text)"] = Callers,
        ["mad.stream_lag(text)"] = Callers,
        ["mad.predict(text,jsonb,jsonb,text)"] = Callers,
        ["mad.predict_async(text,jsonb,text)"] = Callers,
        // Routes only the caller's own request, before it commits (017).
        ["mad.route_request(bigint,text)"] = Callers,
        ["mad.submit_request(text,jsonb,text)"] = Callers,
        ["mad.submit_request(text,jsonb,text,text)"] = Callers,  // 057_2: routed as it is inserted
        ["mad.await_request(bigint)"] = Callers,
        ["mad.deployment_at(text,text,timestamp with time zone)"] = Callers,
        // The published sticky hash: anyone in the mad roles may recompute an assignment.
        ["mad.bucket(bigint,text)"] = "mad_admin mad_sidecar mad_user",
        ["mad.key_text(text[])"] = "mad_admin mad_sidecar mad_user",
        ["mad.require_shadow_reader(text)"] = "mad_admin mad_sidecar mad_user",
        // The sidecar protocol.
        ["mad.register_sidecar(text,text,integer,jsonb)"] = Sidecar,
        ["mad.sidecar_heartbeat(text)"] = Sidecar,
        ["mad.sidecar_stopped(text)"] = Sidecar,
        ["mad.claim_pending_version()"] = Sidecar,
        ["mad.mark_version(text,integer,text,text,jsonb,text)"] = Sidecar,
        ["mad.count_validation_attempt(text,integer,text)"] = Sidecar,
        ["mad.claim_task(text,interval)"] = Sidecar,
        ["mad.renew_task(bigint,uuid,interval)"] = Sidecar,
        ["mad.task_plan(bigint)"] = Sidecar,
        ["mad.complete_task(bigint,uuid,bigint,bigint)"] = Sidecar,
        ["mad.fail_task(bigint,uuid,text,boolean)"] = Sidecar,
        ["mad.arm_request_worker(text)"] = Sidecar,
        ["mad.release_ticket(bigint)"] = Sidecar,
        ["mad.release_and_claim(bigint,text,integer)"] = Sidecar,
        ["mad.claim_requests(text,integer,boolean)"] = Sidecar,
        ["mad.answer_requests(text,jsonb)"] = Sidecar,
        ["mad.purge_requests(integer)"] = Sidecar,
        ["mad.stream_set_notify(boolean)"] = Sidecar,
        ["mad.stream_claim(text,jsonb)"] = Sidecar,
        ["mad.stream_claim_statement(text)"] = Sidecar,
        ["mad.stream_plan(text)"] = Sidecar,
        ["mad.stream_deployment(text)"] = Sidecar,
        ["mad.record_shadow(bigint,uuid,bigint,text)"] = Sidecar,
        ["mad.record_agreement(bigint,uuid,bigint,bigint,jsonb)"] = Sidecar,  // 043_2: champion-vs-canary sums
        ["mad.stream_shadow(text)"] = Sidecar,  // 025: shadow on streams
        ["mad.stream_shadow_plan(text)"] = Sidecar,
        ["mad.record_stream_shadow(text,text)"] = Sidecar,
        ["mad.stream_report(text,text,bigint,double precision,text)"] = Sidecar,
        ["mad.setting_int(text,bigint)"] = Sidecar,
        ["mad.read_role(text)"] = Sidecar,
        ["mad.plan_job(bigint,uuid,bigint,jsonb)"] = Sidecar,
        ["mad.carried_grants(bigint)"] = Sidecar,
        ["mad.check_http_token(text)"] = Sidecar,
        ["mad.live_http_tokens()"] = Sidecar,
        ["mad.advance_deployments(text)"] = Sidecar,
        // Drift monitoring (018): set_baseline runs as its caller, so what it calls is granted to mad_admin too.
        ["mad.set_baseline(text,integer,regclass,jsonb)"] = Admin,
        ["mad.baseline_columns(text,integer,regclass)"] = Admin,
        ["mad.store_baseline(text,integer,text,text,jsonb)"] = Admin,
        ["mad.bin_of(double precision,double precision[])"] = Admin,
        ["mad.drift(text,timestamp with time zone,interval)"] = Callers,
        ["mad.drift_histograms(text,timestamp with time zone,interval)"] = Callers,
        ["mad.add_profile_counts(text,integer,timestamp with time zone,text[],text[],integer[],bigint[])"] = Sidecar,
        // Outcomes (022): set_outcomes and served_predictions are definers that read only mad's tables; performance
        // runs as its caller, so the outcome source is read with the caller's rights.
        ["mad.set_outcomes(text,regclass,text[],text,text)"] = Callers,
        ["mad.served_predictions(text,timestamp with time zone)"] = Callers,
        ["mad.performance(text,interval,timestamp with time zone)"] = Callers,
        ["mad.key_text_sql(text,text[])"] = Callers,
        ["mad.proportion_test(bigint,bigint,bigint,bigint)"] = Callers,
        ["mad.sample_ratio_check(bigint,bigint,double precision)"] = Callers,
        // 027: performance in one pass; both run as their caller.
        ["mad.outcome_metrics(text,interval,timestamp with time zone)"] = Callers,
        ["mad.key_text_inline_sql(text,text[])"] = Callers,
        ["mad.compare(text,text,text,bigint)"] = Callers,
        ["mad.welch_test(double precision,double precision,bigint,double precision,double precision,bigint)"] = Callers,
        ["mad.student_t_p(double precision,double precision)"] = Callers,
        ["mad.incomplete_beta(double precision,double precision,double precision)"] = Callers,
        // 050: outcome_metrics with a lower bound on what is served (mad.compare's current deployment); runs as its caller.
        ["mad.outcome_metrics(text,interval,timestamp with time zone,timestamp with time zone)"] = Callers,
        // 054: when the current split began, shared by mad.compare and the outcome gate; runs as its caller.
        ["mad.split_began(text,text)"] = Callers,
        // 056: whether the source is unique on the key (the catalog only) and whether a history served a key twice (a
        // definer that answers only whom mad.served_predictions answers); mad.outcome_metrics calls both as its caller.
        ["mad.source_unique_on(regclass,text[])"] = Callers,
        ["mad.served_once(text)"] = Callers,
        // 055: the export's served rows with the time each stopped being in force (answers whom served_predictions
        // answers); 060: that rule, once, called by both as mad's owner.
        ["mad.export_served(text,timestamp with time zone)"] = Callers,
        ["mad.require_served_history(text)"] = Nobody,
        ["mad.history_insert(mad.prediction_tables,text)"] = Nobody,
        ["mad.history_rows()"] = Nobody,
        ["mad.attach_history(mad.prediction_tables)"] = Nobody,
        ["mad.history_after_refresh()"] = Nobody,
        // Outcomes of online requests (051): set_outcomes and served_predictions call these two as mad's owner; the
        // export reads the keys' features on the caller's connection, and only mad_admin may.
        ["mad.set_online_outcomes(text,regclass,text[],text,text)"] = Nobody,
        ["mad.online_served_predictions(text,timestamp with time zone)"] = Nobody,
        ["mad.online_key_features(text)"] = Admin,
        ["mad.store_first_window(text,integer,text,jsonb)"] = Sidecar,
        ["mad.online_features(text)"] = Sidecar,
        ["mad.drift_gauges()"] = Sidecar,
        // Drift of the fleet (047): a device pulls baselines and pushes its profile counts; the trigger and the staging check are internal.
        ["mad.device_baselines(text,integer)"] = "mad_device",
        ["mad.begin_push_profile_counts(text)"] = "mad_device",
        ["mad.finish_push_profile_counts(text)"] = "mad_device",
        ["mad.staged_profile_counts(text)"] = Nobody,
        ["mad.drop_edge_profile_counts()"] = Nobody,
        // Edge devices (023): pulls record as mad_user or the device, only mad_device pushes predictions.
        ["mad.record_pull(text,jsonb)"] = "mad_admin mad_device mad_user",
        ["mad.ingest_predictions(text,jsonb)"] = "mad_device",
        ["mad.device_version_bytes(text,integer)"] = "mad_device",
        // A push through COPY (029_1, renamed in 043_1): stage under the claimed device, then move.
        ["mad.begin_device_push(text)"] = "mad_device",
        ["mad.finish_device_push(text)"] = "mad_device",
        ["mad.staged_push_rows()"] = Nobody,
        // Outcomes recorded on devices (029_2).
        ["mad.begin_push_outcomes(text)"] = "mad_device",
        ["mad.finish_push_outcomes(text)"] = "mad_device",
        // Internal helpers: only definer functions (running as the owner) call them.
        ["mad.caller_role()"] = Nobody,
        ["mad.lock_key(text)"] = Nobody,
        ["mad.claim_device(text)"] = Nobody,
        ["mad.check_name(text,text)"] = Nobody,
        ["mad.require_role(text,text)"] = Nobody,
        ["mad.max_model_bytes()"] = Nobody,
        ["mad.describe_models()"] = Nobody,
        ["mad.describe_versions(text)"] = Nobody,
        ["mad.describe_aliases(text)"] = Nobody,
        ["mad.key_list(mad.prediction_tables,text,text)"] = Nobody,
        ["mad.key_values(mad.prediction_tables,text[])"] = Nobody,
        ["mad.qualified_name(regclass)"] = Nobody,
        ["mad.output_sql_type(text)"] = Nobody,
        ["mad.column_feeds(regtype,text)"] = Nobody,
        ["mad.require_source_access(regclass,text)"] = Nobody,
        ["mad.require_binding_owner(mad.prediction_tables,text)"] = Nobody,
        ["mad.require_trigger_privilege(regclass,text)"] = Nobody,
        ["mad.describe_columns(regclass)"] = Nobody,
        ["mad.find_column(regclass,text)"] = Nobody,
        ["mad.resolve_reference(text)"] = Nobody,
        ["mad.ready_signature(text,integer)"] = Nobody,
        ["mad.map_features(regclass,text,jsonb,jsonb)"] = Nobody,
        ["mad.require_prediction_table(text)"] = Nobody,
        ["mad.feature_reads(mad.prediction_tables)"] = Nobody,
        // 016: tensor columns (internal to map_features and feature_reads).
        ["mad.is_tensor_column(regtype)"] = Nobody,
        ["mad.tensor_column_feeds(regtype,text)"] = Nobody,
        ["mad.describe_row(jsonb)"] = Nobody,
        ["mad.ticket_key(bigint)"] = Nobody,
        ["mad.ticket_held(bigint)"] = Nobody,
        ["mad.take_ticket()"] = Nobody,
        ["mad.grant_stream_writes(text)"] = Nobody,
        ["mad.clear_outbox(text)"] = Nobody,
        ["mad.rebuild_outbox_view()"] = Nobody,
        ["mad.capture_function(text,text)"] = Nobody,
        ["mad.create_capture(mad.prediction_tables,boolean)"] = Nobody,
        ["mad.stream_after_refresh()"] = Nobody,
        ["mad.stream_outbox_lag(text)"] = Nobody,
        ["mad.key_type_allowed(regtype)"] = Nobody,
        ["mad.require_builtin_keys(regclass,text[],text[])"] = Nobody,
        ["mad.reaches_superuser(text)"] = Nobody,
        ["mad.sync_reader(text)"] = Nobody,
        ["mad.sync_readers()"] = Nobody,
        ["mad.reader_refusal(text)"] = Nobody,
        ["mad.refuse_reader(text,text,text)"] = Nobody,
        ["mad.reader_of(mad.prediction_tables)"] = Nobody,
        ["mad.grant_predictions(mad.prediction_tables)"] = Nobody,
        ["mad.carry_grants(mad.prediction_tables,bigint,aclitem[])"] = Nobody,
        ["mad.key_type_guard()"] = Nobody,
        ["mad.advisory_lock_holders(bigint,bigint,integer)"] = Nobody,
        ["mad.raise_lock_timeout(text,integer,text)"] = Nobody,
        ["mad.watch_trigger(text,text)"] = Nobody,
        ["mad.key_constraint(text)"] = Nobody,
        ["mad.http_role_may_score(text)"] = Nobody,
        ["mad.require_ready_version(text,integer,text)"] = Nobody,
        ["mad.lock_deployments(text,text)"] = Nobody,
        ["mad.require_alias(text,text)"] = Nobody,
        ["mad.require_same_columns(text,integer,integer,text)"] = Nobody,
        ["mad.record_deployment(text,text,text,text)"] = Nobody,
        ["mad.new_seed()"] = Nobody,
        ["mad.reference_alias(text)"] = Admin, // 033: mad.deployment_report calls it as its reader
        ["mad.finish_canary(text,text,boolean,text,text)"] = Nobody,
        ["mad.gate_error_rate(text,text)"] = Nobody,
        ["mad.gate_outcome(text,text)"] = Nobody,
        ["mad.set_outcome_gate(text,text,text,double precision,bigint)"] = Admin,
        ["mad.set_outcome_floor(text,text,double precision,interval,bigint)"] = Callers, // 042: the table's owner or mad_admin, checked inside
        ["mad.outcome_gauges()"] = Sidecar, // 042: reads outcomes as mad's owner, for /metrics
        ["mad.ensure_shadow(mad.prediction_tables)"] = Nobody,
        ["mad.job_shadow()"] = Nobody,
        ["mad.job_agreement()"] = Nobody,
        ["mad.job_shadow_done()"] = Nobody,
        ["mad.drop_shadow()"] = Nobody,
        ["mad.create_shadow_view(mad.prediction_tables)"] = Nobody,  // 025
        ["mad.upgrade_shadow_storage(mad.prediction_tables)"] = Nobody,
        ["mad.log_arm()"] = Nobody,
        // Pure math, granted in 027_2 so that the tests run by their callers (proportion_test, welch_test) may use it.
        ["mad.log_gamma(double precision)"] = Callers,
        ["mad.gamma_q(double precision,double precision)"] = Callers,
        ["mad.chi_square_99(double precision)"] = Nobody,
        ["mad.ks_p(double precision,double precision,double precision)"] = Nobody,
        ["mad.bin_positions(double precision[])"] = Nobody,
        ["mad.bin_label(text,double precision[],text[],integer)"] = Nobody,
        ["mad.drift_metric_values(text,bigint[],bigint,bigint[],bigint,double precision[],double precision)"] = Nobody,
        ["mad.drift_windows(timestamp with time zone,interval)"] = Nobody,
        ["mad.drift_counts(mad.prediction_tables,timestamp with time zone,interval)"] = Nobody,
        ["mad.drift_gate_metrics(text,text,integer,timestamp with time zone,bigint)"] = Nobody,  // 044_1
        ["mad.drift_gate_tests(text,text,integer,timestamp with time zone,bigint,double precision)"] = Nobody,
        ["mad.gate_drift(text,text)"] = Nobody,
        ["mad.drift_binding(text)"] = Nobody,
    };

    [Fact(Timeout = 60_000)]
    public async Task Every_mad_function_is_granted_to_exactly_the_roles_decided_for_it()
    {
        // Grantees other than the owner; PUBLIC shows as "PUBLIC". Capture functions (one set per watched table) are
        // generated by mad.watch and granted to nobody.
        var actual = await Database.DataSource.QueryAsync<(string Routine, string Grantees)>("""
            SELECT p.oid::regprocedure::text,
                   coalesce((SELECT string_agg(g.name, ' ' ORDER BY g.name)
                             FROM pg_catalog.aclexplode(coalesce(p.proacl, pg_catalog.acldefault('f', p.proowner))) a
                             CROSS JOIN LATERAL (SELECT CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE a.grantee::regrole::text END AS name) g
                             WHERE a.privilege_type = 'EXECUTE' AND a.grantee <> p.proowner), '')
            FROM pg_catalog.pg_proc p
            WHERE p.pronamespace = 'mad'::regnamespace AND p.proname !~ '^capture_[0-9a-f]{16}_[iudt]$'
            """);

        var undecided = actual.Where(a => !Expected.ContainsKey(a.Routine)).Select(a => $"{a.Routine} (granted to '{a.Grantees}')").ToList();
        var wrong = actual.Where(a => Expected.TryGetValue(a.Routine, out var e) && e != a.Grantees)
            .Select(a => $"{a.Routine}: expected '{Expected[a.Routine]}', granted to '{a.Grantees}'").ToList();
        var gone = Expected.Keys.Except(actual.Select(a => a.Routine)).ToList();

        Assert.True(undecided.Count == 0, "Functions without a decided grant (add them to Expected and docs/SECURITY.md): " + string.Join("; ", undecided));
        Assert.True(wrong.Count == 0, string.Join("; ", wrong));
        Assert.True(gone.Count == 0, "Expected functions that do not exist: " + string.Join("; ", gone));
    }
}

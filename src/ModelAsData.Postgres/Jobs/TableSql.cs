namespace ModelAsData.Postgres.Jobs;

/// <summary>
/// Runtime statements of prediction tables and refresh jobs. The rules (names, privileges, mapping, splitting,
/// leases) live in the <c>mad</c> SQL functions of sql/postgres/004_prediction_tables.sql; these only call them or read their tables.
/// </summary>
internal static class TableSql
{
    public const string Create = "SELECT mad.create_prediction_table(@name, @source::regclass, @key, @model, @features::jsonb)::text";

    /// <summary>The source as the caller's search_path resolves it; null when there is no such table.</summary>
    public const string ResolveSource = "SELECT to_regclass(@source)::text";

    private const string TableColumns = """
        p.name AS Name, p.source::text AS Source, p.key_columns AS KeyColumns, p.model AS Model, p.features::text AS Features,
        p.columns::text AS Columns, p.refreshed_at AS RefreshedAt, p.refreshed_version AS RefreshedVersion,
        p.rows_scored AS RowsScored, p.rows_failed AS RowsFailed
        """;

    public const string Get = $"SELECT {TableColumns} FROM mad.prediction_tables p WHERE p.name = @name";

    public const string List = $"SELECT {TableColumns} FROM mad.prediction_tables p ORDER BY p.name";

    public const string Refresh = "SELECT mad.refresh(@name)";

    private const string JobColumns = """
        j.id AS Id, j.prediction_table AS "Table", j.model AS Model, j.version AS Version, j.state AS State,
        j.tasks_done AS TasksDone, j.tasks_total AS TasksTotal, j.rows_done AS RowsDone, j.rows_total AS RowsTotal,
        j.rows_failed AS RowsFailed, j.error AS Error, j.created_by AS CreatedBy, j.created_at AS CreatedAt, j.finished_at AS FinishedAt
        """;

    public const string Job = $"SELECT {JobColumns} FROM mad.jobs j WHERE j.id = @id";

    public const string Jobs = $"SELECT {JobColumns} FROM mad.jobs j ORDER BY j.id DESC LIMIT @limit";

    public const string Claim = """
        SELECT c.task_id AS TaskId, c.job_id AS JobId, c.lease_token AS LeaseToken, c.prediction_table AS "Table",
               c.model AS Model, c.version AS Version, c.sha256 AS Sha256
        FROM mad.claim_task(@sidecar, @lease) c
        """;

    public const string Renew = "SELECT mad.renew_task(@task, @token, @lease)";

    /// <summary>
    /// $1 job: the canary it fixed when it started (017), with the canary version's bytes' sha256; no row when every key
    /// is the champion's.
    /// </summary>
    public const string JobCanary = """
        SELECT j.canary_version, j.canary_percent, j.seed, v.sha256, coalesce(j.agreement_percent, 0)
        FROM mad.jobs j JOIN mad.model_versions v ON v.model = j.model AND v.version = j.canary_version
        WHERE j.id = $1
        """;

    /// <summary>
    /// $1 job: the shadow it fixed when it started (020), with the shadow version's sha256; no row without a shadow.
    /// </summary>
    public const string JobShadow = """
        SELECT j.shadow_version, j.shadow_percent, j.shadow_seed, v.sha256
        FROM mad.jobs j JOIN mad.model_versions v ON v.model = j.model AND v.version = j.shadow_version
        WHERE j.id = $1
        """;

    /// <summary>$1 task, $2 lease token, $3 shadow rows written, $4 why the shadow did not score (or null).</summary>
    public const string RecordShadow = "SELECT mad.record_shadow($1, $2, $3, $4)";

    /// <summary>
    /// $1 task, $2 lease token, $3 rows compared, $4 rows equal (null without a label output), $5 the sum of absolute
    /// differences per value output (jsonb): the task's champion-vs-canary sums (043_2), added to its job's.
    /// </summary>
    public const string RecordAgreement = "SELECT mad.record_agreement($1, $2, $3, $4, $5::jsonb)";

    /// <summary>$1 task.</summary>
    public const string Plan = "SELECT mad.task_plan($1)::text";

    /// <summary>
    /// $1 table: switches the rest of the reader's transaction to the role the table's source is read as (its owner).
    /// Sent in the batch that fetches the plan, after it, so the switch costs no round trip of its own.
    /// </summary>
    public const string ReadAsOwner = "SELECT pg_catalog.set_config('role', mad.read_role($1), true)";

    /// <summary>$1 task, $2 lease token, $3 rows counted, $4 key bounds (JSON): plans the job, returns the task's new plan.</summary>
    public const string PlanJob = "SELECT mad.plan_job($1, $2, $3, $4::jsonb)::text";

    /// <summary>$1 job: the script that makes the replaced table's grants again as their grantors, or null.</summary>
    public const string CarriedGrants = "SELECT mad.carried_grants($1)";

    public const string Complete = "SELECT mad.complete_task(@task, @token, @rows, @failed)";

    public const string Fail = "SELECT mad.fail_task(@task, @token, @error, @retry)";

    /// <summary>$1 model, $2 version.</summary>
}

namespace ModelAsData.Postgres.Streaming;

/// <summary>
/// Runtime statements of streaming. The rules (capture, claim, locks, the per-table statements) live in the <c>mad</c>
/// SQL functions of sql/postgres/006_streaming.sql; these only call them or read their tables.
/// </summary>
internal static class StreamSql
{
    public const string Begin = "BEGIN";

    /// <summary>
    /// Follows <see cref="Begin"/>. The claim's plan is cached while an outbox may be empty (or after an analyze that
    /// saw it so): a sequential scan planned then walks every dead outbox row of later, busier batches (3 ms a batch
    /// was measured). Every statement of a batch has an index to use. Kept to the batch's transaction: the plan fetch
    /// and the catalog reads behind it do better with the planner's own choices (with it session-wide, the drain's
    /// p99 latency went from 5 to 30 ms).
    /// </summary>
    public const string IndexesOnly = "SET LOCAL enable_seqscan = off";

    /// <summary>
    /// Follows <see cref="Begin"/>: a batch whose sidecar stalls or is stopped (SIGSTOP, a debugger, a VM pause) holds
    /// its claimed keys; past this many milliseconds idle the server ends its session, the batch rolls back, and
    /// another drain takes the keys. (A number from <c>mad.settings</c>; SET takes no parameter.)
    /// </summary>
    public static string IdleTimeout(int milliseconds) =>
        string.Create(System.Globalization.CultureInfo.InvariantCulture, $"SET LOCAL idle_in_transaction_session_timeout = {milliseconds}");

    /// <summary>Ends the owner's part of a batch (the read), before the sidecar's own statements (the writes, the protocol calls).</summary>
    public const string ResetRole = "RESET ROLE";

    public const string Commit = "COMMIT";

    public const string Rollback = "ROLLBACK";

    /// <summary>$1 table: its plan, with the statement that claims a batch of it.</summary>
    public const string Plan = "SELECT pg_catalog.jsonb_set(mad.stream_plan($1), '{claim}', pg_catalog.to_jsonb(mad.stream_claim_statement($1)))::text";

    /// <summary>$1 table: the canary a batch scores by (version, percent, seed), read in the batch's transaction; no row: none. 019.</summary>
    public const string Deployment = "SELECT d.canary_version, d.canary_percent, d.seed FROM mad.stream_deployment($1) d";

    /// <summary>$1 table: the shadow a batch scores by (version, percent, seed), read in the batch's transaction; no row: none. 025.</summary>
    public const string Shadow = "SELECT d.shadow_version, d.shadow_percent, d.seed FROM mad.stream_shadow($1) d";

    /// <summary>$1 table: how its batches write their shadow rows (025), or null without a shadow.</summary>
    public const string ShadowPlan = "SELECT mad.stream_shadow_plan($1)::text";

    /// <summary>The shadow's writes roll back alone when they fail: the served rows commit without them (025).</summary>
    public const string ShadowSavepoint = "SAVEPOINT mad_shadow";

    public const string ShadowRelease = "RELEASE SAVEPOINT mad_shadow";

    public const string ShadowRollback = "ROLLBACK TO SAVEPOINT mad_shadow";

    /// <summary>$1 table, $2 why the batch's shadow did not score (or null). 025.</summary>
    public const string RecordShadow = "SELECT mad.record_stream_shadow($1, $2)";


    public const string Watched = "SELECT p.name FROM mad.prediction_tables p WHERE p.watched ORDER BY p.name";

    /// <summary>The most outbox rows a batch claims, and how long (ms) a batch may sit idle in its transaction.</summary>
    public const string BatchSettings = "SELECT mad.setting_int('stream_batch_rows', 1000), mad.setting_int('stream_batch_idle_timeout_ms', 30000)";

    /// <summary>$1 whether writers' capture functions should NOTIFY; returns whether they do (another drain may be polling).</summary>
    public const string SetNotify = "SELECT mad.stream_set_notify($1)";

    /// <summary>$1 sidecar, $2 table, $3 rows streamed, $4 rows/s, $5 the last batch's error or null.</summary>
    public const string Report = "SELECT mad.stream_report($1, $2, $3, $4, $5)";

    /// <summary>$1 table: keys waiting and the oldest one's age in seconds.</summary>
    public const string Lag = "SELECT l.waiting, coalesce(extract(epoch FROM l.oldest_age)::double precision, 0) FROM mad.stream_lag($1) l";
}

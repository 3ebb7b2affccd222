namespace ModelAsData.Postgres;

/// <summary>
/// The protocol constants the C# code shares with the <c>mad</c> SQL functions, in one place: NOTIFY channels,
/// SQLSTATEs, advisory-lock keys and log event ids. docs/PROTOCOL.md has the same table; the SQL side lists them in
/// sql/postgres/001_schemas_and_roles.sql. Each value has one meaning.
/// </summary>
public static class Protocol
{
    /// <summary>NOTIFY channels. A notification is a wake-up call: the work it announces is always a row first.</summary>
    public static class Channels
    {
        /// <summary>A version was pushed, marked ready or rejected, or an alias moved (payload: JSON <c>{"event": "pushed" | "ready" | "rejected" | "alias", "model", "version"[, "alias"]}</c>).</summary>
        public const string Models = "mad_models";

        /// <summary>A refresh job has tasks to claim.</summary>
        public const string Jobs = "mad_jobs";

        /// <summary>A watched table has keys in its outbox (payload: the table's name, or <see cref="PlanChangedPrefix"/> + name).</summary>
        public const string Rows = "mad_rows";

        /// <summary>The prefix of a <see cref="Rows"/> payload that says a table's plan changed (writers send the bare name).</summary>
        public const string PlanChangedPrefix = "plan:";

        /// <summary>An online request is waiting.</summary>
        public const string Requests = "mad_requests";

        /// <summary>An asynchronous request was answered.</summary>
        public const string Reply = "mad_reply";
    }

    /// <summary>
    /// The SQLSTATEs of the <c>mad</c> functions' own errors (class 22, 55 and 57 with an <c>M</c>), and the answer codes
    /// a sidecar writes for a failed online request. Clients branch on these, never on message text.
    /// </summary>
    public static class SqlStates
    {
        /// <summary>A model version exists but is not ready (pending or rejected), or a model has no ready version yet.</summary>
        public const string NotReady = "55M01";

        /// <summary>A refresh task's lease was lost (<c>mad.complete_task</c>): the task's rows roll back.</summary>
        public const string LeaseLost = "55M02";

        /// <summary>No sidecar is running, so nothing can answer <c>CALL mad.predict</c>.</summary>
        public const string NoSidecar = "55M03";

        /// <summary>Features do not fit the model (shape or type), or are not a JSON object.</summary>
        public const string FeatureMismatch = "22M01";

        /// <summary>The model cannot score (ONNX Runtime refused it): an answer code written by the sidecar.</summary>
        public const string InvalidModel = "22M02";

        /// <summary>An online request was not answered in time (it expired).</summary>
        public const string Timeout = "57M01";

        /// <summary>The sidecar answering an online request stopped (its session ended) before it answered.</summary>
        public const string SidecarStopped = "57M02";
    }

    /// <summary>
    /// Advisory-lock keys. Two-int keys are (class, object), their class four ASCII letters (in SQL
    /// <c>mad.lock_key(name)</c>); bigint keys are a lock space of their own.
    /// </summary>
    public static class AdvisoryLocks
    {
        /// <summary>Bigint key serialising migrations of one database, around each script's transaction: "mad_migr" as ASCII.</summary>
        public const long Migrations = 0x6D61645F6D696772;

        /// <summary>Class 'MADR' (<c>mad.lock_key('request_ticket')</c>): a request worker holds its current ticket; <c>CALL mad.predict</c> waits on it.</summary>
        public const int RequestTicket = 0x4D414452;

        /// <summary>Class 'MADP' (<c>mad.lock_key('stream_poll')</c>), object 0: held shared by every drain that polls instead of waiting for NOTIFY.</summary>
        public const int StreamPoll = 0x4D414450;

        /// <summary>Class 'MADN' (<c>mad.lock_key('stream_notify')</c>), object 0: serialises rewrites of the capture functions.</summary>
        public const int StreamNotify = 0x4D41444E;
    }

    /// <summary>
    /// Log event ids, each used by one message: 10xx migrations, 11xx the listener, 20xx–21xx model validation, 22xx
    /// the heartbeat, 23xx refresh jobs, 24xx streaming, 25xx the HTTP door, 26xx the request worker, 27xx the
    /// prediction log. Constants, so <c>[LoggerMessage]</c> attributes can use them; a new message takes the next free
    /// number of its block.
    /// </summary>
    public static class LogEvents
    {
        public const int MigrationApplied = 1001;

        public const int Listening = 1101;
        public const int ListenerDisconnected = 1102;
        public const int ListenerHandlerFailed = 1103;

        public const int VersionReady = 2001;
        public const int VersionRejected = 2002;
        public const int ValidationAttemptFailed = 2003;

        public const int ValidationStarted = 2101;
        public const int ValidationStopped = 2102;
        public const int ValidationScanFailed = 2103;

        public const int SidecarRegistered = 2201;
        public const int HeartbeatFailed = 2202;
        public const int DeploymentStepFailed = 2203;
        public const int LoginHasTooMuch = 2220;
        public const int LoginCheckFailed = 2221;

        public const int RefreshTaskClaimed = 2301;
        public const int RefreshTaskCompleted = 2302;
        public const int RefreshLeaseLost = 2303;
        public const int RefreshTaskGivenBack = 2304;
        public const int RefreshTaskFailed = 2305;
        public const int RefreshLeaseRenewFailed = 2306;
        public const int RefreshScanFailed = 2307;

        public const int StreamBatch = 2401;
        public const int StreamSessionFailed = 2402;
        public const int StreamTableFailed = 2403;
        public const int StreamTableRecovered = 2404;
        public const int StreamHandBackFailed = 2405;
        public const int StreamCatchUpFailed = 2406;

        // Lock waits that ran out (issue 12, item 8), numbered apart so that parallel work on the block does not collide.
        public const int StreamKeyLockTimeout = 2420;
        public const int StreamNotifyLockTimeout = 2421;

        public const int HttpListening = 2501;
        public const int HttpTokenCheckFailed = 2502;
        public const int HttpNoLiveTokens = 2503;
        public const int HttpMetricsExposed = 2504;
        public const int HttpNotReady = 2505;

        public const int RequestWorkerListening = 2601;
        public const int RequestSessionFailed = 2602;

        public const int PredictionLogWriteFailed = 2701;
        public const int OnlineDriftCountFailed = 2702;
        public const int DriftGaugesFailed = 2801;
        public const int OutcomeGaugesFailed = 2802;
        public const int OutcomeGaugeReadFailed = 2803;
    }
}

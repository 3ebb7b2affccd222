namespace ModelAsData.Postgres;

public static partial class Protocol
{
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

        public const int ValidationStarted = 2101;
        public const int ValidationStopped = 2102;
        public const int ValidationScanFailed = 2103;

        public const int SidecarRegistered = 2201;
        public const int HeartbeatFailed = 2202;

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

        public const int HttpListening = 2501;

        public const int RequestWorkerListening = 2601;
        public const int RequestSessionFailed = 2602;

        public const int PredictionLogWriteFailed = 2701;
    }
}

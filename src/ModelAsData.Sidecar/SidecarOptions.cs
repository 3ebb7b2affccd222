using System.Globalization;
using ModelAsData.Core.Onnx;
using ModelAsData.Postgres.Listening;

namespace ModelAsData.Sidecar;

/// <summary>Settings of one sidecar (<c>mad serve</c>), validated once at start by <see cref="Validate"/>.</summary>
public sealed record SidecarOptions
{
    /// <summary>This sidecar's name in <c>mad.sidecars</c> and in <c>validated_by</c>: host, process id and a random suffix by default.</summary>
    public string SidecarId { get; init; } = DefaultId();

    /// <summary>How often the sidecar stamps <c>mad.sidecars.heartbeat_at</c>, on its own timer.</summary>
    public TimeSpan HeartbeatInterval { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>The floor under NOTIFY: pending versions are scanned for at least this often even without a notification.</summary>
    public TimeSpan PollInterval { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>How long a claimed refresh task stays this sidecar's without a renewal (renewed every third of it). <c>MAD_TASK_LEASE_SECONDS</c>.</summary>
    public TimeSpan TaskLease { get; init; } = TimeSpan.FromSeconds(EnvironmentInt("MAD_TASK_LEASE_SECONDS") ?? 30);

    /// <summary>Rows per ONNX Runtime call in refreshes; null: the model's preferred size. <c>MAD_BATCH_SIZE</c>.</summary>
    public int? BatchSize { get; init; } = EnvironmentInt("MAD_BATCH_SIZE");

    /// <summary>
    /// The longest any statement of the sidecar's sessions waits for a lock (<c>lock_timeout</c>, a startup parameter
    /// of every session). Anyone who can connect may take an advisory lock the sidecar waits on: past this, the step
    /// fails, the sidecar says who holds the lock, retries later and goes on with its other work. <c>MAD_LOCK_TIMEOUT_MS</c>.
    /// </summary>
    public TimeSpan LockTimeout { get; init; } = TimeSpan.FromMilliseconds(EnvironmentInt("MAD_LOCK_TIMEOUT_MS") ?? 10_000);

    /// <summary>The floor under NOTIFY for online requests: orphaned and expired requests are scanned for this often.</summary>
    public TimeSpan RequestPollInterval { get; init; } = TimeSpan.FromSeconds(2);

    /// <summary>
    /// Where the HTTP endpoint (Open Inference Protocol v2, health, /metrics) listens: <c>host:port</c>, or a port alone
    /// for loopback (127.0.0.1). Null: no HTTP endpoint.
    /// </summary>
    public string? Http { get; init; }

    /// <summary>The HTTP door's limits, its /metrics and its token checks (<see cref="Requests.HttpDoorOptions"/>).</summary>
    public Requests.HttpDoorOptions HttpDoor { get; init; } = new();

    /// <summary>
    /// How many versions online scoring (CALL, async, HTTP) keeps loaded; the least recently used one goes when
    /// another is needed. <c>MAD_MAX_LOADED_VERSIONS</c>.
    /// </summary>
    public int MaxLoadedVersions { get; init; } = EnvironmentInt("MAD_MAX_LOADED_VERSIONS") ?? 8;

    /// <summary>Keepalive and reconnect backoff of the LISTEN connection.</summary>
    public PostgresListenerOptions Listener { get; init; } = new();

    /// <summary>How models are loaded; <see cref="ScoringOptions.MaxModelBytes"/> also bounds what the sidecar accepts.</summary>
    public ScoringOptions Scoring { get; init; } = ScoringOptions.Default;

    /// <summary>Throws <see cref="ArgumentException"/> naming the setting and its value when one makes no sense.</summary>
    public void Validate()
    {
        if (string.IsNullOrWhiteSpace(SidecarId) || SidecarId.Length > 200)
        {
            throw new ArgumentException($"SidecarId must be 1 to 200 characters, not '{SidecarId}'.", nameof(SidecarId));
        }

        if (HeartbeatInterval < TimeSpan.FromMilliseconds(100))
        {
            throw new ArgumentOutOfRangeException(nameof(HeartbeatInterval), HeartbeatInterval, "HeartbeatInterval must be at least 100 ms.");
        }

        if (PollInterval < TimeSpan.FromMilliseconds(100))
        {
            throw new ArgumentOutOfRangeException(nameof(PollInterval), PollInterval, "PollInterval must be at least 100 ms.");
        }

        if (TaskLease < TimeSpan.FromMilliseconds(300))
        {
            throw new ArgumentOutOfRangeException(nameof(TaskLease), TaskLease, "TaskLease must be at least 300 ms.");
        }

        if (LockTimeout < TimeSpan.FromMilliseconds(100) || LockTimeout > TimeSpan.FromHours(1))
        {
            throw new ArgumentOutOfRangeException(nameof(LockTimeout), LockTimeout, "LockTimeout (MAD_LOCK_TIMEOUT_MS) must be between 100 ms and 1 hour.");
        }

        if (BatchSize is < 1)
        {
            throw new ArgumentOutOfRangeException(nameof(BatchSize), BatchSize, "BatchSize must be at least 1.");
        }

        if (RequestPollInterval < TimeSpan.FromMilliseconds(100))
        {
            throw new ArgumentOutOfRangeException(nameof(RequestPollInterval), RequestPollInterval, "RequestPollInterval must be at least 100 ms.");
        }

        if (MaxLoadedVersions < 1)
        {
            throw new ArgumentOutOfRangeException(nameof(MaxLoadedVersions), MaxLoadedVersions, "MaxLoadedVersions must be at least 1.");
        }

        if (Http is not null)
        {
            HttpDoor.Validate(Requests.HttpEndpoint.Parse(Http));
        }

        Listener.Validate();
    }

    private static int? EnvironmentInt(string name) =>
        int.TryParse(Environment.GetEnvironmentVariable(name), NumberStyles.Integer, CultureInfo.InvariantCulture, out var value) ? value : null;

    private static string DefaultId() =>
        string.Create(CultureInfo.InvariantCulture, $"{Environment.MachineName}:{Environment.ProcessId}:{Guid.NewGuid().ToString("N")[..8]}");
}

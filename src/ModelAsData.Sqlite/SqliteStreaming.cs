using ModelAsData.Core;
using ModelAsData.Core.Registry;

namespace ModelAsData.Sqlite;

/// <summary>
/// The embedded store does not stream: there are no sidecars to drain an outbox, so its prediction tables are scored
/// when refreshed. Every call says so and what to use instead.
/// </summary>
public sealed class SqliteStreaming : IStreaming
{
    public bool IsSupported => false;

    public Task WatchAsync(string name, CancellationToken cancellationToken = default) => throw Refused("watch", name);

    public Task UnwatchAsync(string name, CancellationToken cancellationToken = default) => throw Refused("unwatch", name);

    public Task<StreamLag> GetLagAsync(string name, CancellationToken cancellationToken = default) => throw Refused("lag", name);

    public Task<IReadOnlyList<StreamLag>> ListLagsAsync(CancellationToken cancellationToken = default) => throw Refused("lag", null);

    private static ModelAsDataException Refused(string verb, string? name) =>
        new(ErrorCode.NotSupported,
            $"{verb} needs the PostgreSQL store (--db postgres://...): SQLite tables are not streamed; they are refreshed with mad tables refresh {name ?? "NAME"}.");
}

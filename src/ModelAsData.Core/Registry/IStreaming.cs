namespace ModelAsData.Core.Registry;

/// <summary>
/// Streaming prediction tables: a watched table's changed source rows are scored by running sidecars within
/// milliseconds, instead of waiting for the next refresh. Stores that cannot stream implement it too: then
/// <see cref="IsSupported"/> is false and every call throws <see cref="ErrorCode.NotSupported"/> saying what to use instead.
/// </summary>
public interface IStreaming
{
    /// <summary>Whether this store streams at all; the CLI leaves streaming out of its reports where it does not.</summary>
    bool IsSupported { get; }

    /// <summary>Starts streaming the prediction table (<c>mad.watch</c>).</summary>
    Task WatchAsync(string name, CancellationToken cancellationToken = default);

    /// <summary>Stops streaming the prediction table and drops the keys still waiting (<c>mad.unwatch</c>).</summary>
    Task UnwatchAsync(string name, CancellationToken cancellationToken = default);

    /// <summary>Whether the table is watched, and its live lag.</summary>
    Task<StreamLag> GetLagAsync(string name, CancellationToken cancellationToken = default);

    /// <summary>Every watched table's live lag, by name.</summary>
    Task<IReadOnlyList<StreamLag>> ListLagsAsync(CancellationToken cancellationToken = default);
}

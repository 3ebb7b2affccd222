namespace ModelAsData.Core.Registry;

/// <summary>
/// A prediction table's streaming state (<c>mad.stream_lag</c>): whether it is watched, keys waiting in its outbox
/// (<c>mad_outbox.&lt;name&gt;</c>) and the oldest one's age, the rows/s the sidecars report, and why its last batch failed.
/// </summary>
public sealed class StreamLag
{
    public string Name { get; set; } = "";

    public bool Watched { get; set; }

    public long Waiting { get; set; }

    public double? OldestSeconds { get; set; }

    public double RowsPerSecond { get; set; }

    public string? Error { get; set; }
}

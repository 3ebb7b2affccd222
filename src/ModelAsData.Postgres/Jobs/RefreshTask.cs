namespace ModelAsData.Postgres.Jobs;

/// <summary>A task a sidecar has claimed: its lease token fences every later call about it.</summary>
public sealed class RefreshTask
{
    public long TaskId { get; set; }

    public long JobId { get; set; }

    public Guid LeaseToken { get; set; }

    public string Table { get; set; } = "";

    public string Model { get; set; } = "";

    public int Version { get; set; }

    public string Sha256 { get; set; } = "";

    public override string ToString() => $"task {TaskId} of job {JobId} ({Table}, {Model}@{Version})";
}

/// <summary>What a task wrote: rows, and how many of them carry an error instead of a prediction.</summary>
public readonly record struct RefreshTaskResult(long Rows, long Failed, string JobState);

namespace ModelAsData.Core.Registry;

/// <summary>
/// Refreshes that run as jobs other processes (sidecars) carry out: start one and get its id at once, then follow it.
/// Stores without a job queue implement it too: then <see cref="IsSupported"/> is false, every call throws
/// <see cref="ErrorCode.NotSupported"/>, and <see cref="IPredictionTables.RefreshAsync"/> refreshes in the calling process.
/// </summary>
public interface IRefreshJobs
{
    /// <summary>Whether this store runs refreshes as jobs; where false, refresh with <see cref="IPredictionTables.RefreshAsync"/>.</summary>
    bool IsSupported { get; }

    /// <summary>Starts a refresh of the prediction table; returns the job id (of the one already running, if any).</summary>
    Task<long> StartRefreshAsync(string name, CancellationToken cancellationToken = default);

    /// <summary>The job; throws <see cref="ErrorCode.NotFound"/> when there is none of that id.</summary>
    Task<RefreshJob> GetJobAsync(long id, CancellationToken cancellationToken = default);

    /// <summary>The most recent jobs, newest first.</summary>
    Task<IReadOnlyList<RefreshJob>> ListJobsAsync(int limit = 50, CancellationToken cancellationToken = default);

    /// <summary>
    /// Waits until the job has finished, reporting progress as it goes; returns the finished job (done or failed).
    /// Cancelling stops the wait, not the job.
    /// </summary>
    Task<RefreshJob> WaitForJobAsync(long id, IProgress<RefreshJob>? progress = null, CancellationToken cancellationToken = default);
}

/// <summary>One refresh job and how far it has come.</summary>
/// <param name="State"><c>running</c>, <c>done</c> or <c>failed</c>.</param>
public sealed record RefreshJob(
    long Id,
    string Table,
    string Model,
    int Version,
    string State,
    int TasksDone,
    int TasksTotal,
    long RowsDone,
    long RowsTotal,
    long RowsFailed,
    string? Error,
    string CreatedBy,
    DateTimeOffset CreatedAt,
    DateTimeOffset? FinishedAt)
{
    public bool IsFinished => State is "done" or "failed";

    /// <summary>Rows per second from creation to finish (or to now while running).</summary>
    public double RowsPerSecond(DateTimeOffset now)
    {
        var seconds = ((FinishedAt ?? now) - CreatedAt).TotalSeconds;
        return seconds <= 0 ? 0 : RowsDone / seconds;
    }
}

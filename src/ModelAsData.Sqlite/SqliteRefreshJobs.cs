using ModelAsData.Core;
using ModelAsData.Core.Registry;

namespace ModelAsData.Sqlite;

/// <summary>
/// The embedded store has no job queue: <see cref="SqlitePredictionTables.RefreshAsync"/> scores in the calling
/// process and returns when done. Every call here says so and what to use instead.
/// </summary>
public sealed class SqliteRefreshJobs : IRefreshJobs
{
    public bool IsSupported => false;

    public Task<long> StartRefreshAsync(string name, CancellationToken cancellationToken = default) => throw Refused();

    public Task<RefreshJob> GetJobAsync(long id, CancellationToken cancellationToken = default) => throw Refused();

    public Task<IReadOnlyList<RefreshJob>> ListJobsAsync(int limit = 50, CancellationToken cancellationToken = default) => throw Refused();

    public Task<RefreshJob> WaitForJobAsync(long id, IProgress<RefreshJob>? progress = null, CancellationToken cancellationToken = default) => throw Refused();

    private static ModelAsDataException Refused() =>
        new(ErrorCode.NotSupported,
            "Jobs need the PostgreSQL store (--db postgres://...), where sidecars refresh tables: SQLite tables are refreshed in-process, and at once, with mad tables refresh NAME.");
}

using System.Diagnostics;
using Dapper;
using ModelAsData.Core;
using ModelAsData.Core.Registry;
using ModelAsData.Postgres.Registry;
using Npgsql;

namespace ModelAsData.Postgres.Jobs;

/// <summary>
/// Prediction tables in PostgreSQL: outputs in schema <c>mad_out</c>, refreshed as jobs that running sidecars
/// (<c>mad serve</c>) split between them. Every call goes through the <c>mad</c> SQL functions
/// (<c>mad.create_prediction_table</c>, <c>mad.refresh</c>), so SQL users and this class share one set of rules,
/// checked against the privileges of the login that calls. Thread-safe; does not own the registry's data source.
/// </summary>
public sealed class PostgresPredictionTables : IPredictionTables, IRefreshJobs
{
    private readonly PostgresModelRegistry _registry;
    private readonly TimeSpan _pollInterval;

    public PostgresPredictionTables(PostgresModelRegistry registry, TimeSpan? pollInterval = null)
    {
        _registry = registry;
        _pollInterval = pollInterval ?? TimeSpan.FromMilliseconds(100);
    }

    /// <summary>How long a job may show no progress before the wait checks that a sidecar is alive at all.</summary>
    public static TimeSpan StallCheck { get; } = TimeSpan.FromSeconds(5);

    private NpgsqlDataSource DataSource => _registry.DataSource;

    /// <summary>Every refresh here is a job of the queue in <c>mad.refresh_jobs</c>.</summary>
    public bool IsSupported => true;

    public Task<PredictionTable> CreateAsync(PredictionTableSpec spec, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(spec);
        return RunAsync(async connection =>
        {
            var source = await connection.ExecuteScalarAsync<string?>(Command(TableSql.ResolveSource, new { source = spec.Source }, cancellationToken))
                ?? throw new ModelAsDataException(ErrorCode.NotFound,
                    $"No table or view '{spec.Source}' in {PostgresErrors.Describe(DataSource.ConnectionString)} (names resolve with the login's search_path; qualify it as schema.table).");
            if (spec.Key.Count == 0)
            {
                throw new ModelAsDataException(ErrorCode.InvalidArgument, $"Give the key column(s) that identify a row of {spec.Source}, e.g. --key id.");
            }

            await connection.ExecuteScalarAsync<string>(Command(TableSql.Create, new
            {
                name = spec.Name,
                source,
                key = spec.Key.ToArray(),
                model = spec.Model,
                features = spec.Features?.ToJsonString(),
            }, cancellationToken));
            return (await connection.QuerySingleAsync<TableRow>(Command(TableSql.Get, new { name = spec.Name }, cancellationToken))).ToTable();
        }, cancellationToken);
    }

    public Task<PredictionTable> GetAsync(string name, CancellationToken cancellationToken = default) =>
        RunAsync(async connection =>
        {
            var row = await connection.QuerySingleOrDefaultAsync<TableRow>(Command(TableSql.Get, new { name }, cancellationToken));
            if (row is null)
            {
                var known = (await connection.QueryAsync<TableRow>(Command(TableSql.List, null, cancellationToken))).Select(r => r.Name).ToList();
                throw new ModelAsDataException(ErrorCode.NotFound,
                    $"No prediction table '{name}' ({(known.Count == 0 ? "there are none" : "tables: " + string.Join(", ", known))}). Create one with: mad tables create {name} --model MODEL --source TABLE --key COLUMN");
            }

            return row.ToTable();
        }, cancellationToken);

    public Task<IReadOnlyList<PredictionTable>> ListAsync(CancellationToken cancellationToken = default) =>
        RunAsync<IReadOnlyList<PredictionTable>>(async connection =>
            (await connection.QueryAsync<TableRow>(Command(TableSql.List, null, cancellationToken))).Select(r => r.ToTable()).ToList(), cancellationToken);

    /// <summary>Starts a refresh and waits for the sidecars to finish it; fails when the job fails.</summary>
    public async Task<RefreshResult> RefreshAsync(string name, IProgress<RefreshProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        var started = Stopwatch.GetTimestamp();
        var id = await StartRefreshAsync(name, cancellationToken);
        var job = await WaitForJobAsync(id, progress is null ? null : new Progress<RefreshJob>(j => progress.Report(new RefreshProgress(j.RowsDone, Math.Max(j.RowsTotal, j.RowsDone)))),
            cancellationToken);
        var version = await _registry.ResolveAsync(new ModelReference(job.Model, null, job.Version), cancellationToken);
        return new RefreshResult(name, version, job.RowsDone, job.RowsFailed, Stopwatch.GetElapsedTime(started));
    }

    public Task<long> StartRefreshAsync(string name, CancellationToken cancellationToken = default) =>
        RunAsync(connection => connection.ExecuteScalarAsync<long>(Command(TableSql.Refresh, new { name }, cancellationToken)), cancellationToken);

    public Task<RefreshJob> GetJobAsync(long id, CancellationToken cancellationToken = default) =>
        RunAsync(async connection =>
            (await connection.QuerySingleOrDefaultAsync<JobRow>(Command(TableSql.Job, new { id }, cancellationToken)))?.ToJob()
            ?? throw new ModelAsDataException(ErrorCode.NotFound, $"No job {id}; list jobs with: mad jobs"), cancellationToken);

    public Task<IReadOnlyList<RefreshJob>> ListJobsAsync(int limit = 50, CancellationToken cancellationToken = default) =>
        RunAsync<IReadOnlyList<RefreshJob>>(async connection =>
            (await connection.QueryAsync<JobRow>(Command(TableSql.Jobs, new { limit }, cancellationToken))).Select(r => r.ToJob()).ToList(), cancellationToken);

    /// <summary>
    /// Polls the job until it has finished; a failed job throws with its error. When the job has made no progress for
    /// <see cref="StallCheck"/> and no sidecar is alive, throws <see cref="ErrorCode.Timeout"/> saying to start one.
    /// </summary>
    public async Task<RefreshJob> WaitForJobAsync(long id, IProgress<RefreshJob>? progress = null, CancellationToken cancellationToken = default)
    {
        var lastDone = -1L;
        var lastChange = System.Diagnostics.Stopwatch.GetTimestamp();
        while (true)
        {
            var job = await GetJobAsync(id, cancellationToken);
            progress?.Report(job);
            if (job.RowsDone != lastDone || job.TasksDone > 0 && job.IsFinished)
            {
                lastDone = job.RowsDone;
                lastChange = System.Diagnostics.Stopwatch.GetTimestamp();
            }
            else if (System.Diagnostics.Stopwatch.GetElapsedTime(lastChange) > StallCheck)
            {
                lastChange = System.Diagnostics.Stopwatch.GetTimestamp();
                if (await RunAsync(c => c.ExecuteScalarAsync<int>(Command(RegistrySql.LiveSidecars, null, cancellationToken)), cancellationToken) == 0)
                {
                    throw new ModelAsDataException(ErrorCode.Timeout,
                        $"Job {id} (refresh of {job.Table}) is waiting for a sidecar, and none is running: start one with `mad serve --db ...`. The job stays running, its tasks queued until a sidecar claims them; follow it with: mad jobs follow {id}");
                }
            }

            if (job.State == "failed")
            {
                throw new ModelAsDataException(ErrorCode.Conflict, $"Job {id} (refresh of {job.Table} with {job.Model}@{job.Version}) failed: {job.Error}");
            }

            if (job.IsFinished)
            {
                return job;
            }

            await Task.Delay(_pollInterval, cancellationToken);
        }
    }

    private static CommandDefinition Command(string sql, object? parameters, CancellationToken cancellationToken) =>
        new(sql, parameters, cancellationToken: cancellationToken, commandTimeout: 0);

    private async Task<T> RunAsync<T>(Func<NpgsqlConnection, Task<T>> work, CancellationToken cancellationToken)
    {
        try
        {
            await using var connection = await DataSource.OpenConnectionAsync(cancellationToken);
            return await work(connection);
        }
        catch (Exception e) when (PostgresErrors.CanMap(e))
        {
            throw PostgresErrors.Map(e, DataSource);
        }
    }
}

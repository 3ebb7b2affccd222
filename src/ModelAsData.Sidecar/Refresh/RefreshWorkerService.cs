using ModelAsData.Postgres;
using System.Text.Json;
using Dapper;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using ModelAsData.Core;
using ModelAsData.Postgres.Jobs;
using ModelAsData.Postgres.Listening;
using Npgsql;

namespace ModelAsData.Sidecar.Refresh;

/// <summary>
/// Carries out refresh jobs: claims tasks (<c>mad.claim_task</c>, FOR UPDATE SKIP LOCKED) on start, on every
/// <c>mad_jobs</c> notification, after every reconnect of the listener and at least every
/// <see cref="SidecarOptions.PollInterval"/>, and runs each with <see cref="RefreshTaskRunner"/>. The lease is renewed
/// on its own timer, never behind scoring; when a renewal finds the lease gone, the task is abandoned and its rows roll
/// back. A task that fails on a lost connection or a shutdown is given back at once; other failures count as attempts.
/// </summary>
internal sealed partial class RefreshWorkerService : BackgroundService
{
    private readonly NpgsqlDataSource _dataSource;
    private readonly SidecarOptions _options;
    private readonly RefreshTaskRunner _runner;
    private readonly ILogger _logger;
    private readonly WakeSignal _wake = new();

    public RefreshWorkerService(NpgsqlDataSource dataSource, PostgresListener listener, SidecarOptions options, ModelAsData.Core.Onnx.ModelCache cache,
        ILogger<RefreshWorkerService> logger)
    {
        _dataSource = dataSource;
        _options = options;
        _logger = logger;
        _runner = new RefreshTaskRunner(dataSource, cache, options.BatchSize);
        listener.Connected += (_, _) => _wake.Set();
        listener.Notified += (_, notification) =>
        {
            if (notification.Channel == Protocol.Channels.Jobs && IsWork(notification.Payload))
            {
                _wake.Set();
            }
        };
    }

    public override void Dispose()
    {
        _wake.Dispose();
        base.Dispose();
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        await Task.Yield();
        try
        {
            while (!stoppingToken.IsCancellationRequested)
            {
                var failed = false;
                try
                {
                    while (await ClaimAsync(stoppingToken) is { } task)
                    {
                        await RunAsync(task, stoppingToken);
                    }
                }
                catch (Exception e) when (e is not OperationCanceledException || !stoppingToken.IsCancellationRequested)
                {
                    LogScanFailed(_logger, e);
                    failed = true;
                }

                // After a failure (the database away), look again soon: the listener's reconnect may come later.
                await _wake.WaitAsync(failed ? TimeSpan.FromSeconds(1) : _options.PollInterval, stoppingToken);
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
            // Stopping.
        }
    }

    private async Task<RefreshTask?> ClaimAsync(CancellationToken cancellationToken)
    {
        await using var connection = await _dataSource.OpenConnectionAsync(cancellationToken);
        return await connection.QuerySingleOrDefaultAsync<RefreshTask>(new CommandDefinition(TableSql.Claim,
            new { sidecar = _options.SidecarId, lease = _options.TaskLease }, cancellationToken: cancellationToken));
    }

    private async Task RunAsync(RefreshTask task, CancellationToken stoppingToken)
    {
        LogClaimed(_logger, task.TaskId, task.JobId, task.Table);
        using var abandon = CancellationTokenSource.CreateLinkedTokenSource(stoppingToken);
        using var renewing = new CancellationTokenSource();
        var renewal = RenewAsync(task, abandon, renewing.Token);
        try
        {
            var started = System.Diagnostics.Stopwatch.GetTimestamp();
            var result = await _runner.RunAsync(task, abandon.Token);
            LogCompleted(_logger, task.TaskId, task.JobId, result.Rows, result.Failed, (long)System.Diagnostics.Stopwatch.GetElapsedTime(started).TotalMilliseconds, result.JobState);
        }
        catch (PostgresException e) when (e.SqlState == Protocol.SqlStates.LeaseLost)
        {
            LogLeaseLost(_logger, task.TaskId, task.JobId);
        }
        catch (OperationCanceledException) when (abandon.IsCancellationRequested && !stoppingToken.IsCancellationRequested)
        {
            LogLeaseLost(_logger, task.TaskId, task.JobId);
        }
        catch (Exception e) when (e is OperationCanceledException || IsConnectionFailure(e))
        {
            // Shutting down or the connection dropped: give the task back at once (best effort; else its lease expires).
            LogGivenBack(_logger, e, task.TaskId, task.JobId);
            await FailAsync(task, e.Message, retry: true);
            if (!stoppingToken.IsCancellationRequested)
            {
                throw;
            }
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            // Bad data or a model that cannot load: a model error fails the job now, anything else is retried a few times.
            LogTaskFailed(_logger, e, task.TaskId, task.JobId);
            await FailAsync(task, Describe(e), retry: !IsPermanent(e));
        }
        finally
        {
            await renewing.CancelAsync();
            await renewal;
        }
    }

    /// <summary>Renews the lease every third of its length; abandons the task when the lease is found gone.</summary>
    private async Task RenewAsync(RefreshTask task, CancellationTokenSource abandon, CancellationToken stop)
    {
        using var timer = new PeriodicTimer(_options.TaskLease / 3);
        try
        {
            while (await timer.WaitForNextTickAsync(stop))
            {
                try
                {
                    await using var connection = await _dataSource.OpenConnectionAsync(stop);
                    var held = await connection.ExecuteScalarAsync<bool>(new CommandDefinition(TableSql.Renew,
                        new { task = task.TaskId, token = task.LeaseToken, lease = _options.TaskLease }, cancellationToken: stop));
                    if (!held)
                    {
                        await abandon.CancelAsync();
                        return;
                    }
                }
                catch (Exception e) when (e is NpgsqlException or TimeoutException or IOException)
                {
                    LogRenewFailed(_logger, e, task.TaskId);
                }
            }
        }
        catch (OperationCanceledException)
        {
            // The task ended.
        }
    }

    private async Task FailAsync(RefreshTask task, string error, bool retry)
    {
        try
        {
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(5));
            await using var connection = await _dataSource.OpenConnectionAsync(timeout.Token);
            await connection.ExecuteScalarAsync<string>(new CommandDefinition(TableSql.Fail,
                new { task = task.TaskId, token = task.LeaseToken, error, retry }, cancellationToken: timeout.Token));
        }
        catch (Exception e) when (e is NpgsqlException or TimeoutException or IOException or OperationCanceledException)
        {
            LogRenewFailed(_logger, e, task.TaskId); // its lease will expire instead
        }
    }

    /// <summary>
    /// Failures that another attempt would meet again: the model, keys that repeat or are NULL, a key type that is not
    /// built in, or the owner lacking a privilege on the source (a revoked grant fails the job with the server's message).
    /// </summary>
    private static bool IsPermanent(Exception e) =>
        e is ModelAsDataException { Code: ErrorCode.InvalidModel or ErrorCode.FeatureMismatch or ErrorCode.InvalidArgument }
        || (e is PostgresException pg && pg.SqlState is PostgresErrorCodes.UniqueViolation or PostgresErrorCodes.NotNullViolation
            or PostgresErrorCodes.InsufficientPrivilege or PostgresErrorCodes.InvalidParameterValue);

    private static string Describe(Exception e) => e is PostgresException { SqlState: PostgresErrorCodes.UniqueViolation or PostgresErrorCodes.NotNullViolation } pg
        ? $"the key of the source is not unique or has NULLs, so its rows cannot be told apart ({pg.MessageText}{(pg.Detail is { } d ? ": " + d : "")})"
        : e.Message;

    private static bool IsConnectionFailure(Exception e) =>
        e is NpgsqlException { IsTransient: true } or IOException or TimeoutException
        || (e is PostgresException pg && pg.SqlState is PostgresErrorCodes.AdminShutdown or PostgresErrorCodes.CrashShutdown or PostgresErrorCodes.QueryCanceled)
        || (e is NpgsqlException && e is not PostgresException);

    /// <summary>Work appeared: a new job, a job split into tasks, or a task given back. Progress and finish notices need nothing.</summary>
    private static bool IsWork(string payload)
    {
        try
        {
            using var document = JsonDocument.Parse(payload);
            return !document.RootElement.TryGetProperty("event", out var kind) || kind.ValueEquals("created") || kind.ValueEquals("planned") || kind.ValueEquals("retry");
        }
        catch (JsonException)
        {
            return true;
        }
    }

    [LoggerMessage(EventId = Protocol.LogEvents.RefreshTaskClaimed, Level = LogLevel.Information, Message = "Claimed task {Task} of job {Job} ({Table})")]
    private static partial void LogClaimed(ILogger logger, long task, long job, string table);

    [LoggerMessage(EventId = Protocol.LogEvents.RefreshTaskCompleted, Level = LogLevel.Information, Message = "Task {Task} of job {Job}: {Rows} rows, {Failed} with an error, in {ElapsedMs} ms; job {State}")]
    private static partial void LogCompleted(ILogger logger, long task, long job, long rows, long failed, long elapsedMs, string state);

    [LoggerMessage(EventId = Protocol.LogEvents.RefreshLeaseLost, Level = LogLevel.Warning, Message = "Task {Task} of job {Job}: the lease was lost; its rows were rolled back")]
    private static partial void LogLeaseLost(ILogger logger, long task, long job);

    [LoggerMessage(EventId = Protocol.LogEvents.RefreshTaskGivenBack, Level = LogLevel.Warning, Message = "Task {Task} of job {Job} was given back")]
    private static partial void LogGivenBack(ILogger logger, Exception exception, long task, long job);

    [LoggerMessage(EventId = Protocol.LogEvents.RefreshTaskFailed, Level = LogLevel.Error, Message = "Task {Task} of job {Job} failed")]
    private static partial void LogTaskFailed(ILogger logger, Exception exception, long task, long job);

    [LoggerMessage(EventId = Protocol.LogEvents.RefreshLeaseRenewFailed, Level = LogLevel.Warning, Message = "Could not renew or give back the lease of task {Task}")]
    private static partial void LogRenewFailed(ILogger logger, Exception exception, long task);

    [LoggerMessage(EventId = Protocol.LogEvents.RefreshScanFailed, Level = LogLevel.Warning, Message = "Claiming refresh tasks failed; retrying")]
    private static partial void LogScanFailed(ILogger logger, Exception exception);
}

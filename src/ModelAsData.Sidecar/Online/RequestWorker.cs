using System.Diagnostics;
using System.Text.Json.Nodes;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using ModelAsData.Core;
using ModelAsData.Core.Scoring;
using ModelAsData.Postgres;
using Npgsql;
using NpgsqlTypes;

namespace ModelAsData.Sidecar.Online;

/// <summary>
/// Answers <c>mad.requests</c> (from <c>CALL mad.predict</c> and <c>mad.predict_async</c>) over one dedicated
/// connection that LISTENs on <c>mad_requests</c>, claims the requests assigned to this sidecar (and, on a scan at
/// start, after a reconnect and every <see cref="SidecarOptions.RequestPollInterval"/>, orphaned ones), scores them,
/// and writes the answers. The connection always holds this worker's <em>ticket</em> (an advisory lock): answering a
/// batch moves to a new ticket and releases the old one, which is what wakes the procedures waiting for their answer.
/// </summary>
internal sealed partial class RequestWorker : BackgroundService
{
    private const int MaxClaim = 64;
    private readonly NpgsqlDataSource _dataSource;
    private readonly SidecarOptions _options;
    private readonly OnlineModels _models;
    private readonly PredictionLog _log;
    private readonly OnlineMetrics _metrics;
    private readonly ILogger _logger;
    private readonly List<ClaimedRequest> _notified = [];
    private readonly RecentRequestIds _answered = new(4 * MaxClaim);
    private volatile bool _woken;
    private bool _claimNeeded;

    public RequestWorker(NpgsqlDataSource dataSource, SidecarOptions options, OnlineModels models, PredictionLog log, OnlineMetrics metrics, ILogger<RequestWorker> logger)
    {
        _dataSource = dataSource;
        _options = options;
        _models = models;
        _log = log;
        _metrics = metrics;
        _logger = logger;
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var attempt = 0;
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                await RunSessionAsync(() => attempt = 0, stoppingToken);
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
            {
                break;
            }
            catch (Exception e) when (e is NpgsqlException or TimeoutException or IOException or InvalidOperationException or ModelAsDataException)
            {
                attempt++;
                var delay = TimeSpan.FromMilliseconds(Math.Min(250 * Math.Pow(2, Math.Min(attempt - 1, 10)), 10_000) * (0.8 + (0.4 * Random.Shared.NextDouble())));
                LogSessionFailed(_logger, e, (long)delay.TotalMilliseconds);
                try
                {
                    await Task.Delay(delay, stoppingToken);
                }
                catch (OperationCanceledException)
                {
                    break;
                }
            }
        }
    }

    private async Task RunSessionAsync(Action connected, CancellationToken stoppingToken)
    {
        var builder = PostgresConnectionString.Parse(_dataSource.ConnectionString);
        builder.Pooling = false; // the session holds the ticket and the LISTEN: it must be ours alone
        builder.KeepAlive = (int)Math.Ceiling(_options.Listener.KeepAliveInterval.TotalSeconds);
        builder.TcpKeepAlive = true;
        builder.ApplicationName = "mad serve (requests)";
        await using var connection = new NpgsqlConnection(builder.ConnectionString);
        await connection.OpenAsync(stoppingToken);
        connection.Notification += OnNotification;
        await using (var session = new NpgsqlCommand(OnlineSql.Session, connection))
        {
            await session.ExecuteNonQueryAsync(stoppingToken);
        }

        await using var claim = new NpgsqlCommand(OnlineSql.Claim, connection)
        {
            Parameters = { new() { Value = _options.SidecarId }, new() { Value = MaxClaim }, new() { NpgsqlDbType = NpgsqlDbType.Boolean } },
        };
        await using var arm = new NpgsqlCommand(OnlineSql.Arm, connection) { Parameters = { new() { Value = _options.SidecarId } } };
        var ticket = (long)(await arm.ExecuteScalarAsync(stoppingToken))!;
        _models.ForgetReferences(); // notifications were missed while disconnected
        LogArmed(_logger, _options.SidecarId, connection.ProcessID);
        connected();

        await using var purge = new NpgsqlCommand(OnlineSql.Purge, connection);
        var purged = Stopwatch.GetTimestamp();
        var scan = true;
        _notified.Clear();
        _answered.Clear();
        while (!stoppingToken.IsCancellationRequested)
        {
            _woken = false;
            // Requests that came whole in their notification need no claim: the answer claims them.
            var requests = new List<ClaimedRequest>(_notified);
            _notified.Clear();
            if (scan || _claimNeeded || requests.Count == 0)
            {
                _claimNeeded = false;
                claim.Parameters[2].Value = scan;
                var known = requests.Select(r => r.Id).ToHashSet();
                requests.AddRange((await ClaimAsync(claim, stoppingToken)).Where(r => !known.Contains(r.Id)));
                if (scan && Stopwatch.GetElapsedTime(purged) > TimeSpan.FromMinutes(1))
                {
                    await purge.ExecuteScalarAsync(stoppingToken);
                    purged = Stopwatch.GetTimestamp();
                }

                scan = false;
            }

            requests.RemoveAll(r => _answered.Contains(r.Id));
            if (requests.Count > 0)
            {
                ticket = await AnswerAsync(connection, requests, ticket, stoppingToken);
                if (_woken || requests.Count == MaxClaim)
                {
                    continue; // more arrived meanwhile
                }
            }

            while (!_woken)
            {
                if (!await connection.WaitAsync(_options.RequestPollInterval, stoppingToken))
                {
                    scan = true;
                    break;
                }
            }
        }
    }

    private void OnNotification(object sender, NpgsqlNotificationEventArgs e)
    {
        if (e.Channel == Protocol.Channels.Models)
        {
            _models.ForgetReferences();
        }
        else if (e.Payload.StartsWith('{'))
        {
            if (Parse(e.Payload) is { } request)
            {
                _notified.Add(request);
                _woken = true;
            }
        }
        else if (e.Payload.Length == 0 || e.Payload == _options.SidecarId)
        {
            _claimNeeded = true;
            _woken = true;
        }
    }

    /// <summary>A request sent whole in its notification, if it is for this sidecar.</summary>
    private ClaimedRequest? Parse(string payload)
    {
        try
        {
            var json = JsonNode.Parse(payload);
            if (json?["s"]?.GetValue<string>() != _options.SidecarId)
            {
                return null;
            }

            return new ClaimedRequest(json["id"]!.GetValue<long>(), json["k"]!.GetValue<string>(), json["r"]!.GetValue<string>(),
                json["m"]!.GetValue<string>(), json["v"]!.GetValue<int>(), json["f"]!.GetValue<string>());
        }
        catch (Exception e) when (e is System.Text.Json.JsonException or InvalidOperationException or FormatException or NullReferenceException)
        {
            _claimNeeded = true; // not ours to read: the table has it
            return null;
        }
    }

    private static async Task<List<ClaimedRequest>> ClaimAsync(NpgsqlCommand claim, CancellationToken cancellationToken)
    {
        var requests = new List<ClaimedRequest>();
        await using var reader = await claim.ExecuteReaderAsync(cancellationToken);
        while (await reader.ReadAsync(cancellationToken))
        {
            requests.Add(new ClaimedRequest(reader.GetInt64(0), reader.GetString(1), reader.GetString(2), reader.GetString(3), reader.GetInt32(4), reader.GetString(5)));
        }

        return requests;
    }

    private async Task<long> AnswerAsync(NpgsqlConnection connection, List<ClaimedRequest> requests, long ticket, CancellationToken cancellationToken)
    {
        var answers = new JsonArray();
        foreach (var request in requests)
        {
            answers.Add(await ScoreAsync(request, cancellationToken));
            _answered.Add(request.Id);
        }

        // One round trip, two transactions: the answers and the new ticket commit, then the old ticket is released
        // (releasing it before the commit would wake waiters who cannot see their answer yet).
        await using var batch = new NpgsqlBatch(connection) { EnableErrorBarriers = true };
        batch.BatchCommands.Add(new NpgsqlBatchCommand(OnlineSql.Answer) { Parameters = { new() { Value = _options.SidecarId }, new() { Value = answers.ToJsonString() } } });
        batch.BatchCommands.Add(new NpgsqlBatchCommand(OnlineSql.Release) { Parameters = { new() { Value = ticket } } });
        await using var reader = await batch.ExecuteReaderAsync(cancellationToken);
        await reader.ReadAsync(cancellationToken);
        var next = reader.GetInt64(0);
        while (await reader.NextResultAsync(cancellationToken))
        {
        }

        return next;
    }

    private async Task<JsonObject> ScoreAsync(ClaimedRequest request, CancellationToken cancellationToken)
    {
        var started = Stopwatch.GetTimestamp();
        var hash = PredictionLog.Hash(request.Features);
        try
        {
            var version = await _models.GetAsync(request.Model, request.Version, cancellationToken);
            var result = version.Predict(JsonFeatures.Parse(request.Features), request.Reference, cancellationToken);
            _metrics.RowsScored.WithLabels(request.Model).Inc();
            _metrics.Requests.WithLabels(request.Kind, "ok").Inc();
            _log.Add(new PredictionLogEntry(DateTime.UtcNow, request.Kind, request.Model, request.Version, hash, result, null, request.Id));
            return new JsonObject { ["id"] = request.Id, ["result"] = result };
        }
        catch (ModelAsDataException e)
        {
            _metrics.Requests.WithLabels(request.Kind, "error").Inc();
            _metrics.Errors.WithLabels(request.Kind, e.Code.ToString()).Inc();
            _log.Add(new PredictionLogEntry(DateTime.UtcNow, request.Kind, request.Model, request.Version, hash, null, e.Message, request.Id));
            return new JsonObject { ["id"] = request.Id, ["error"] = e.Message, ["code"] = SqlState(e.Code) };
        }
        finally
        {
            _metrics.Latency.WithLabels(request.Kind).Observe(Stopwatch.GetElapsedTime(started).TotalSeconds);
        }
    }

    /// <summary>The SQLSTATE a failed request raises in its caller, so that clients branch on it as on any other.</summary>
    internal static string SqlState(ErrorCode code) => code switch
    {
        ErrorCode.FeatureMismatch or ErrorCode.InvalidArgument => "22M01",
        ErrorCode.NotFound => "P0002",
        ErrorCode.NotReady => "55M01",
        ErrorCode.InvalidName => "42602",
        ErrorCode.InvalidModel => "22M02",
        ErrorCode.Timeout => "57M01",
        _ => "XX000",
    };

    [LoggerMessage(EventId = Protocol.LogEvents.RequestWorkerListening, Level = LogLevel.Information, Message = "Sidecar {SidecarId} answers online requests (backend {ProcessId})")]
    private static partial void LogArmed(ILogger logger, string sidecarId, int processId);

    [LoggerMessage(EventId = Protocol.LogEvents.RequestSessionFailed, Level = LogLevel.Warning, Message = "The request worker's session failed; reconnecting in {DelayMs} ms")]
    private static partial void LogSessionFailed(ILogger logger, Exception exception, long delayMs);

    private sealed record ClaimedRequest(long Id, string Kind, string Reference, string Model, int Version, string Features);
}

using System.Collections.Concurrent;
using System.Text.Json.Nodes;
using static ModelAsData.IntegrationTests.Requests.RequestSupport;

namespace ModelAsData.IntegrationTests.Requests;

/// <summary>
/// Application clients calling <c>CALL mad.predict</c> in a loop until stopped, each call on a connection from the
/// clients' pool and bounded by <see cref="CallTimeout"/>: a call still running then counts as hung. Every outcome is
/// kept, in order, for the test to judge. Also an async client that asks <c>mad.predict_async</c> in a loop and keeps
/// the ids with the label each must get. Loops are bounded (a call count per client) and stop by themselves.
/// </summary>
internal sealed class CallLoad : IAsyncDisposable
{
    /// <summary>Far beyond predict_timeout_ms (10 s): a call that has not ended by then hangs.</summary>
    public static readonly TimeSpan CallTimeout = TimeSpan.FromSeconds(30);

    private static readonly (string Features, long Label)[] s_flowers = [(Setosa, 0L), (Versicolor, 1L), (Virginica, 2L)];
    private readonly NpgsqlDataSource _clients;
    private readonly string _model;
    private readonly CancellationTokenSource _stop = new();
    private readonly List<Task> _loops = [];
    private long _successes;

    public CallLoad(string connectionString, string model, int clients, bool async)
    {
        _clients = NpgsqlDataSource.Create(new NpgsqlConnectionStringBuilder(connectionString)
        {
            MaxPoolSize = clients + 4,
            ApplicationName = "calls under faults",
            Timeout = 10,
            CommandTimeout = (int)CallTimeout.TotalSeconds + 5,
        }.ConnectionString);
        _model = model;
        for (var client = 0; client < clients; client++)
        {
            var id = client;
            _loops.Add(Task.Run(() => CallLoopAsync(id)));
        }

        if (async)
        {
            _loops.Add(Task.Run(AskLoopAsync));
        }
    }

    /// <summary>Every call's outcome: "ok", "wrong label …", "SQLSTATE message", "connection: …" or "hung …".</summary>
    public ConcurrentQueue<(DateTime At, int Client, string Outcome)> Outcomes { get; } = new();

    /// <summary>Async requests asked, with the label each must be answered with.</summary>
    public ConcurrentQueue<(long Id, long Label)> Asked { get; } = new();

    public long Successes => Interlocked.Read(ref _successes);

    /// <summary>Stops the loops after their current call and waits for them.</summary>
    public async Task StopAsync()
    {
        await _stop.CancelAsync();
        await Task.WhenAll(_loops);
    }

    public async ValueTask DisposeAsync()
    {
        await StopAsync();
        await _clients.DisposeAsync();
        _stop.Dispose();
    }

    private async Task CallLoopAsync(int client)
    {
        for (var i = 0; i < 20_000 && !_stop.IsCancellationRequested; i++)
        {
            var (features, label) = s_flowers[(client + i) % 3];
            var outcome = await CallOnceAsync(features, label);
            Outcomes.Enqueue((DateTime.UtcNow, client, outcome));
            if (outcome == "ok")
            {
                Interlocked.Increment(ref _successes);
            }
            else if (!outcome.StartsWith("hung", StringComparison.Ordinal))
            {
                await Task.Delay(20); // an error comes back at once: do not spin on a dead server
            }
        }
    }

    private async Task<string> CallOnceAsync(string features, long label)
    {
        using var timeout = new CancellationTokenSource(CallTimeout);
        try
        {
            await using var connection = await _clients.OpenConnectionAsync(timeout.Token);
            await using var call = new NpgsqlCommand("CALL mad.predict($1, $2::jsonb, NULL)", connection) { Parameters = { new() { Value = _model }, new() { Value = features } } };
            var answer = JsonNode.Parse((string)(await call.ExecuteScalarAsync(timeout.Token))!)!;
            return answer["label"]!.GetValue<long>() == label ? "ok" : $"wrong label {answer["label"]} for {features}";
        }
        catch (OperationCanceledException) when (timeout.IsCancellationRequested)
        {
            return $"hung: no answer nor error within {CallTimeout.TotalSeconds} s";
        }
        catch (PostgresException e)
        {
            return $"{e.SqlState} {e.MessageText} {e.Hint}";
        }
        catch (NpgsqlException e)
        {
            return $"connection: {e.Message}";
        }
    }

    private async Task AskLoopAsync()
    {
        for (var i = 0; i < 20_000 && !_stop.IsCancellationRequested; i++)
        {
            var (features, label) = s_flowers[i % 3];
            try
            {
                await using var connection = await _clients.OpenConnectionAsync();
                await using var ask = new NpgsqlCommand("SELECT mad.predict_async($1, $2::jsonb)", connection) { Parameters = { new() { Value = _model }, new() { Value = features } } };
                Asked.Enqueue(((long)(await ask.ExecuteScalarAsync())!, label));
            }
            catch (NpgsqlException)
            {
                // The server is restarting: nothing was asked.
            }

            await Task.Delay(10);
        }
    }
}

using System.Collections.Concurrent;
using System.Diagnostics;
using System.Text.Json.Nodes;
using static ModelAsData.IntegrationTests.Requests.RequestSupport;

namespace ModelAsData.IntegrationTests.Requests;

/// <summary>Many application connections calling at once, as pgbench does: no false errors, each answer its own.</summary>
public sealed class ConcurrentCallTests(PostgresDatabase database) : OnlineRequestTests(database)
{
    [Fact(Timeout = 120_000)]
    public async Task Thirty_two_clients_calling_at_once_get_no_errors_and_each_its_own_answer()
    {
        var model = await PushIrisAsync();
        await using var sidecar = await StartSidecarAsync();
        var builder = new NpgsqlConnectionStringBuilder(Database.ConnectionString) { MaxPoolSize = 40, ApplicationName = "concurrent callers" };
        await using var clients = NpgsqlDataSource.Create(builder.ConnectionString);
        var errors = new ConcurrentQueue<string>();
        var calls = 0L;
        var flowers = new[] { (Setosa, 0L), (Versicolor, 1L), (Virginica, 2L) };
        var until = Stopwatch.StartNew();

        // Bounded: each client calls for 8 s (or 200 calls), then stops.
        await Task.WhenAll(Enumerable.Range(0, 32).Select(client => Task.Run(async () =>
        {
            await using var connection = await clients.OpenConnectionAsync(Ct);
            for (var i = 0; i < 200 && until.Elapsed < TimeSpan.FromSeconds(8); i++)
            {
                var (features, label) = flowers[(client + i) % 3];
                try
                {
                    await using var call = new NpgsqlCommand("CALL mad.predict($1, $2::jsonb, NULL)", connection) { Parameters = { new() { Value = model }, new() { Value = features } } };
                    var answer = JsonNode.Parse((string)(await call.ExecuteScalarAsync(Ct))!)!;
                    if (answer["label"]!.GetValue<long>() != label)
                    {
                        errors.Enqueue($"client {client} call {i}: label {answer["label"]} for {features}");
                    }
                }
                catch (PostgresException e)
                {
                    errors.Enqueue($"client {client} call {i}: {e.SqlState} {e.MessageText}");
                }

                Interlocked.Increment(ref calls);
            }
        }, Ct)));

        Assert.True(calls >= 32, $"only {calls} calls were made");
        Assert.Empty(errors.Take(10));
    }

    [Fact(Timeout = 60_000)]
    public async Task Requests_waiting_together_are_answered_in_one_batch_and_features_that_do_not_fit_fail_alone()
    {
        var model = await PushIrisAsync();
        var other = await PushIrisAsync();
        string[] features = [Setosa, Versicolor, """{"float_input": [1.0, 2.0]}""", Virginica, """{"petal": 1}""", Setosa];
        var ids = new List<long>();
        foreach (var (f, i) in features.Select((f, i) => (f, i)))
        {
            ids.Add(await Database.DataSource.ScalarAsync<long>("SELECT mad.predict_async(@model, @f::jsonb)", new { model = i % 2 == 0 ? model : other, f }));
        }

        // No sidecar yet: its first scan claims all six at once, two versions, two bad rows among them.
        await using var sidecar = await StartSidecarAsync();

        var rows = await Eventually.WaitForAsync(
            () => Database.DataSource.QueryAsync<(long Id, string Status, long? Label, string? Code, string? Error)>(
                "SELECT id, status, (result->>'label')::bigint, error_code, error FROM mad.requests WHERE id = ANY(@ids) ORDER BY id", new { ids = ids.ToArray() }),
            r => r.Count == 6 && r.All(x => x.Status is "done" or "failed"), "all six to be answered");
        Assert.Equal([0L, 1L, null, 2L, null, 0L], rows.Select(r => r.Label));
        Assert.Equal(["done", "done", "failed", "done", "failed", "done"], rows.Select(r => r.Status));
        Assert.Equal("22M01", rows[2].Code);
        Assert.Contains("takes 4 value(s); 2 given", rows[2].Error, StringComparison.Ordinal);
        Assert.Equal("22M01", rows[4].Code);
        Assert.Contains("no input 'petal'", rows[4].Error, StringComparison.Ordinal);
    }
}

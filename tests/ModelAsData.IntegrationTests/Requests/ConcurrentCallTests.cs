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
}

using System.Text.Json.Nodes;
using ModelAsData.IntegrationTests.Postgres;
using static ModelAsData.IntegrationTests.Requests.RequestSupport;

namespace ModelAsData.IntegrationTests.Requests;

/// <summary>
/// CALL mad.predict with the models of tests/models/make_onnx_graphs.py (docs/TENSORS.md): uint64 in and out as exact
/// JSON numbers past 2^63 and 2^53; a row ONNX Runtime fails on, with a fixed batch of 1, raised with its reason.
/// </summary>
public sealed class ExactCallTests(PostgresDatabase database) : OnlineRequestTests(database)
{
    private static string Made(string file) => Path.Combine(AppContext.BaseDirectory, "TestData", file);

    [Fact(Timeout = 60_000)]
    public async Task Call_answers_uint64_outputs_as_exact_json_numbers_and_a_row_onnx_runtime_fails_on_with_its_reason()
    {
        var registry = new PostgresModelRegistry(Database.DataSource);
        var counters = Sql.UniqueName("u64");
        var lookup = Sql.UniqueName("lookup_one");
        await registry.PushReadyAsync(counters, Made("uint64_columns.onnx"));
        await registry.PushReadyAsync(lookup, Made("gather_one.onnx"));
        await using var sidecar = await StartSidecarAsync();

        var answer = JsonNode.Parse(await CallAsync(Database.DataSource, counters, """{"x": [18446744073709551615, 9223372036854775808, 9007199254740993, 0]}"""))!;
        var found = JsonNode.Parse(await CallAsync(Database.DataSource, lookup, """{"ids": [4, 4]}"""))!;
        var past = await Database.DataSource.FailsAsync("CALL mad.predict(@model, @features::jsonb, NULL)", new { model = lookup, features = """{"ids": [4, 10]}""" });

        Assert.Equal("18446744073709551615", answer["first"]!.ToJsonString());
        Assert.Equal("9223372036854775808", answer["echo_1"]!.ToJsonString());
        Assert.Equal("[[18446744073709551615,9223372036854775808],[9007199254740993,0]]", answer["grid"]!.ToJsonString());
        Assert.Equal(7.8f, found["score"]!.GetValue<float>(), 1e-5f);
        Assert.Contains("ONNX Runtime could not score this row: ", past.MessageText, StringComparison.Ordinal);
        Assert.Contains("idx=10", past.MessageText, StringComparison.Ordinal);
    }

    [Fact(Timeout = 60_000)]
    public async Task Concurrent_calls_scored_in_one_batch_answer_every_good_row_and_raise_only_the_bad_ones_error()
    {
        // gather_ids.onnx takes [N, 2]: calls claimed together are one ONNX Runtime call; an id of 10 or more fails it,
        // and the scorer splits the batch down to that row (with or without batching, each call gets its own answer).
        var registry = new PostgresModelRegistry(Database.DataSource);
        var lookup = Sql.UniqueName("lookup");
        await registry.PushReadyAsync(lookup, Made("gather_ids.onnx"));
        await using var sidecar = await StartSidecarAsync();

        var calls = Enumerable.Range(0, 12).Select(i => Task.Run(async () =>
        {
            var features = i == 7 ? """{"ids": [3, 77]}""" : $$"""{"ids": [{{i % 10}}, {{(i + 1) % 10}}]}""";
            try
            {
                return (i, Score: JsonNode.Parse(await CallAsync(Database.DataSource, lookup, features))!["score"]!.GetValue<float>(), Error: (string?)null);
            }
            catch (Npgsql.PostgresException e)
            {
                return (i, Score: float.NaN, Error: e.MessageText);
            }
        })).ToList();
        var answers = await Task.WhenAll(calls);

        Assert.Equal([7], answers.Where(a => a.Error is not null).Select(a => a.i));
        Assert.Contains("ONNX Runtime could not score this row: ", answers[7].Error, StringComparison.Ordinal);
        Assert.Contains("idx=77", answers[7].Error, StringComparison.Ordinal);
        // Row r of the 10 x 3 table sums to 0.9 r + 0.3: ids (a, b) score 0.9 (a + b) + 0.6.
        Assert.All(answers.Where(a => a.Error is null), a => Assert.Equal((0.9f * ((a.i % 10) + ((a.i + 1) % 10))) + 0.6f, a.Score, 1e-4f));
    }
}

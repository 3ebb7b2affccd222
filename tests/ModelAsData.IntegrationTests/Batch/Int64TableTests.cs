using System.Text.Json.Nodes;
using ModelAsData.IntegrationTests.Postgres;
using ModelAsData.Postgres.Jobs;
using static ModelAsData.IntegrationTests.Streaming.StreamingTables;

namespace ModelAsData.IntegrationTests.Batch;

/// <summary>
/// int64 outputs keep every bit (docs/TENSORS.md): int64_columns.onnx (tests/models/make_onnx_graphs.py) passes an
/// int64 [N, 2] input through Slice and Identity, so the bigint columns must hold what went in, past 2^53 (where a
/// double steps by 2) and at both extremes, at refresh, at stream and in CALL mad.predict's JSON.
/// </summary>
public sealed class Int64TableTests(PostgresDatabase database) : DatabaseTests(database)
{
    private const long PastDouble = 9007199254740993; // 2^53 + 1: a double reads it as 2^53

    [Fact(Timeout = 90_000)]
    public async Task Int64_outputs_past_two_to_the_53_are_refreshed_streamed_and_answered_exactly()
    {
        var registry = new PostgresModelRegistry(Database.DataSource);
        var model = Sql.UniqueName("int64_columns");
        await registry.PushReadyAsync(model, Path.Combine(AppContext.BaseDirectory, "TestData", "int64_columns.onnx"));
        await using var sidecar = await RunningSidecar.StartAsync(Database.ConnectionString);
        var tables = new PostgresPredictionTables(registry, TimeSpan.FromMilliseconds(50));
        var source = Sql.UniqueName("pairs");
        await Database.DataSource.ExecuteAsync($"""
            CREATE TABLE public.{source} (id bigint PRIMARY KEY, a bigint, b bigint);
            INSERT INTO public.{source} VALUES (1, {PastDouble}, {long.MaxValue}), (2, {long.MinValue}, -{PastDouble});
            """);
        var name = Sql.UniqueName("pair_scores");
        await Database.DataSource.ExecuteAsync($$"""SELECT mad.create_prediction_table('{{name}}', 'public.{{source}}', '{id}', '{{model}}', '{"x": ["a", "b"]}')""");

        var result = await tables.RefreshAsync(name, cancellationToken: Ct);

        var errors = await Database.DataSource.QueryAsync<string>($"SELECT error FROM mad_out.{name} WHERE error IS NOT NULL");
        Assert.Equal((2L, 0L, ""), (result.Rows, result.Failed, string.Join("; ", errors)));
        await AssertExactAsync(name, 1, PastDouble, long.MaxValue);
        await AssertExactAsync(name, 2, long.MinValue, -PastDouble);

        // The stream door, and CALL's JSON numbers.
        await Database.DataSource.ExecuteAsync("SELECT mad.watch(@name)", new { name });
        await Database.DataSource.ExecuteAsync($"INSERT INTO public.{source} VALUES (3, -{PastDouble}, {PastDouble})");
        await WaitForAsync(Database, $"SELECT count(*) FROM mad_out.{name} WHERE id = 3", 1);
        await AssertExactAsync(name, 3, -PastDouble, PastDouble);
        var answer = JsonNode.Parse(await Database.DataSource.ScalarAsync<string>(
            "CALL mad.predict(@model, @features::jsonb, NULL)", new { model, features = $$"""{"x": [{{PastDouble}}, {{long.MinValue}}]}""" }))!;
        Assert.Equal((PastDouble.ToString(), long.MinValue.ToString()), (answer["first"]!.ToJsonString(), answer["echo_1"]!.ToJsonString()));
    }

    private async Task AssertExactAsync(string name, long id, long a, long b)
    {
        var row = (await Database.DataSource.QueryAsync<(long First, long Echo0, long Echo1, string? Error)>(
            $"SELECT first, echo_0, echo_1, error FROM mad_out.{name} WHERE id = @id", new { id })).Single();
        Assert.Equal((a, a, b, (string?)null), row);
    }
}

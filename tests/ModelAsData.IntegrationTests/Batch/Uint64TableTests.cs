using ModelAsData.IntegrationTests.Postgres;
using ModelAsData.Postgres.Jobs;
using static ModelAsData.IntegrationTests.Streaming.StreamingTables;

namespace ModelAsData.IntegrationTests.Batch;

/// <summary>
/// uint64 outputs bound to prediction tables (docs/TENSORS.md, 053): uint64_columns.onnx (tests/models/
/// make_onnx_graphs.py) passes a uint64 [N, 4] input through Slice, Identity and Reshape, so what comes out must be
/// what went in, digit for digit, past 2^63 and 2^53: numeric(20,0) columns and a numeric[] column, at refresh and
/// at stream, fed from numeric(20,0)[] and from four numeric(20,0) columns (read as text, not as double).
/// </summary>
public sealed class Uint64TableTests(PostgresDatabase database) : DatabaseTests(database)
{
    private const string Edges = "18446744073709551615,9223372036854775808,9007199254740993,0";

    [Fact(Timeout = 90_000)]
    public async Task Uint64_outputs_are_refreshed_and_streamed_into_numeric_columns_digit_for_digit()
    {
        await using var sidecar = await RunningSidecar.StartAsync(Database.ConnectionString);
        var (model, tables) = await ReadyAsync();
        var source = Sql.UniqueName("counters");
        await Database.DataSource.ExecuteAsync($$"""
            CREATE TABLE public.{{source}} (id bigint PRIMARY KEY, x numeric(20,0)[]);
            INSERT INTO public.{{source}} VALUES (1, '{{{Edges}}}'), (2, '{1,2,3,4}'), (3, '{1,2,3,-1}'), (4, '{1,2,3,18446744073709551616}');
            """);
        var name = Sql.UniqueName("counter_scores");

        await Database.DataSource.ExecuteAsync($"SELECT mad.create_prediction_table('{name}', 'public.{source}', '{{id}}', '{model}')");
        var result = await tables.RefreshAsync(name, cancellationToken: Ct);

        Assert.Equal((4L, 2L), (result.Rows, result.Failed));
        var types = await Database.DataSource.QueryAsync<string>($"SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = 'mad_out.{name}'::regclass AND attnum > 1 AND attnum < 9 ORDER BY attnum");
        Assert.Equal(["numeric(20,0)", "numeric(20,0)", "numeric(20,0)", "numeric(20,0)", "numeric(20,0)", "numeric[]"], types.Take(6));
        await AssertEdgesAsync(name, 1);
        Assert.Equal("{{1,2},{3,4}}", await Database.DataSource.ScalarAsync<string>($"SELECT grid::text FROM mad_out.{name} WHERE id = 2"));
        var errors = await Database.DataSource.QueryAsync<string>($"SELECT error FROM mad_out.{name} WHERE id > 2 ORDER BY id");
        Assert.All(errors, e => Assert.StartsWith("column x: element 3: ", e, StringComparison.Ordinal));

        // The stream door: a row inserted into the watched source, upserted through text into the same types.
        await Database.DataSource.ExecuteAsync("SELECT mad.watch(@name)", new { name });
        await Database.DataSource.ExecuteAsync($"INSERT INTO public.{source} VALUES (5, '{{{Edges}}}')");
        await WaitForAsync(Database, $"SELECT count(*) FROM mad_out.{name} WHERE id = 5", 1);
        await AssertEdgesAsync(name, 5);
    }

    [Fact(Timeout = 90_000)]
    public async Task Scalar_numeric_columns_feed_a_uint64_input_exactly_and_an_output_table_feeds_the_model_again()
    {
        await using var sidecar = await RunningSidecar.StartAsync(Database.ConnectionString);
        var (model, tables) = await ReadyAsync();
        var source = Sql.UniqueName("parts");
        await Database.DataSource.ExecuteAsync($"""
            CREATE TABLE public.{source} (id bigint PRIMARY KEY, a numeric(20,0), b numeric, c text, d bigint);
            INSERT INTO public.{source} VALUES (1, 18446744073709551615, 9223372036854775808, '9007199254740993', 0), (2, 1, 1.5, '1', 1);
            """);
        var name = Sql.UniqueName("part_scores");
        await Database.DataSource.ExecuteAsync($$"""SELECT mad.create_prediction_table('{{name}}', 'public.{{source}}', '{id}', '{{model}}', '{"x": ["a", "b", "c", "d"]}')""");

        var result = await tables.RefreshAsync(name, cancellationToken: Ct);

        Assert.Equal((2L, 1L), (result.Rows, result.Failed));
        await AssertEdgesAsync(name, 1);
        Assert.Contains("does not fit input 'x'", await Database.DataSource.ScalarAsync<string>($"SELECT error FROM mad_out.{name} WHERE id = 2"), StringComparison.Ordinal);

        // The prediction table's own numeric(20,0) columns as the source of another table of the same model.
        var again = Sql.UniqueName("again");
        await Database.DataSource.ExecuteAsync($$"""SELECT mad.create_prediction_table('{{again}}', 'mad_out.{{name}}', '{id}', '{{model}}', '{"x": ["echo_0", "echo_1", "echo_2", "echo_3"]}')""");
        await tables.RefreshAsync(again, cancellationToken: Ct);
        await AssertEdgesAsync(again, 1);
    }

    /// <summary>Every uint64 column of the row holds exactly the edges (as text, so nothing rounds on the way out).</summary>
    private async Task AssertEdgesAsync(string name, long id)
    {
        var row = (await Database.DataSource.QueryAsync<(string First, string Echo, string Grid, string? Error)>(
            $"SELECT first::text, concat_ws(',', echo_0, echo_1, echo_2, echo_3), grid::text, error FROM mad_out.{name} WHERE id = @id", new { id })).Single();
        Assert.Equal(("18446744073709551615", Edges, "{{18446744073709551615,9223372036854775808},{9007199254740993,0}}", (string?)null), row);
    }

    private async Task<(string Model, PostgresPredictionTables Tables)> ReadyAsync()
    {
        var registry = new PostgresModelRegistry(Database.DataSource);
        var model = Sql.UniqueName("uint64_columns");
        var pushed = await registry.PushReadyAsync(model, Path.Combine(AppContext.BaseDirectory, "TestData", "uint64_columns.onnx"));
        await registry.WaitForValidationAsync(model, pushed.Version, TimeSpan.FromSeconds(30), Ct);
        return (model, new PostgresPredictionTables(registry, TimeSpan.FromMilliseconds(50)));
    }
}

using ModelAsData.IntegrationTests.Batch;

namespace ModelAsData.IntegrationTests.Monitoring;

/// <summary>mad.set_baseline and mad.drift on bad input: clear errors, or explicit n_current = 0 rows, never NaN.</summary>
public sealed class BaselineInputTests(PostgresDatabase database) : DatabaseTests(database)
{
    [Fact(Timeout = 60_000)]
    public async Task Bad_baselines_are_refused_with_what_is_wrong()
    {
        var (model, source) = await BoundModelAsync();
        var empty = Sql.UniqueName("empty");
        var blank = Sql.UniqueName("blank");
        var other = Sql.UniqueName("other");
        await Database.DataSource.ExecuteAsync($"""
            CREATE TABLE public.{empty} (LIKE public.{source});
            CREATE TABLE public.{blank} AS SELECT id, sepal_length, NULL::double precision AS sepal_width, petal_length, petal_width FROM public.{source};
            CREATE TABLE public.{other} (id bigint, tenure int);
            """);

        var missing = await Database.DataSource.FailsAsync($"SELECT mad.set_baseline('{model}', 1, 'public.{other}')");
        var noRows = await Database.DataSource.FailsAsync($"SELECT mad.set_baseline('{model}', 1, 'public.{empty}')");
        var nulls = await Database.DataSource.FailsAsync($"SELECT mad.set_baseline('{model}', 1, 'public.{blank}')");
        var falling = await Database.DataSource.FailsAsync($$"""SELECT mad.set_baseline('{{model}}', 1, 'public.{{source}}', bins => '{"sepal_length": [3, 12, 5]}')""");
        var unknown = await Database.DataSource.FailsAsync($$"""SELECT mad.set_baseline('{{model}}', 1, 'public.{{source}}', bins => '{"tenure": [3, 12]}')""");

        Assert.Equal((PostgresErrorCodes.UndefinedColumn, true), (missing.SqlState, missing.MessageText.Contains("has no column petal_length, petal_width, sepal_length, sepal_width", StringComparison.Ordinal)));
        Assert.Equal((PostgresErrorCodes.NoDataFound, true), (noRows.SqlState, noRows.MessageText.Contains("has no rows", StringComparison.Ordinal)));
        Assert.Equal((PostgresErrorCodes.InvalidParameterValue, true), (nulls.SqlState, nulls.MessageText.Contains("Column 'sepal_width' is null in all 50 baseline rows", StringComparison.Ordinal)));
        Assert.Equal((PostgresErrorCodes.InvalidParameterValue, true), (falling.SqlState, falling.MessageText.Contains("The bins of column 'sepal_length' must rise: 12 is followed by 5.", StringComparison.Ordinal)));
        Assert.Equal((PostgresErrorCodes.InvalidParameterValue, true), (unknown.SqlState, unknown.MessageText.Contains("The bins name 'tenure', which the baseline does not profile", StringComparison.Ordinal)));
        Assert.Equal(0L, await Database.DataSource.ScalarAsync<long>("SELECT count(*) FROM mad.baselines WHERE model = @model", new { model }));
    }

    [Fact(Timeout = 60_000)]
    public async Task Given_edges_bin_the_baseline_and_windows_without_rows_give_n_current_zero_and_no_values()
    {
        var (model, source) = await BoundModelAsync();
        var name = await Database.DataSource.ScalarAsync<string>("SELECT name FROM mad.prediction_tables WHERE model = @model", new { model });
        var columns = await Database.DataSource.ScalarAsync<int>(
            $$"""SELECT mad.set_baseline('{{model}}', 1, 'public.{{source}}', bins => '{"sepal_length": [4, 5, 6]}')""");
        var stored = await Database.DataSource.QueryAsync<(double[] Edges, long[] Counts)>(
            "SELECT edges, counts FROM mad.baselines WHERE model = @model AND column_name = 'sepal_length'", new { model });

        var rows = await Database.DataSource.QueryAsync<(DateTime Start, string Column, string Metric, double? Value, bool Drifted, long NBaseline, long NCurrent)>(
            $"SELECT window_start, \"column\", metric, value, drifted, n_baseline, n_current FROM mad.drift('{name}', since => now() - interval '3 days', \"window\" => '1 day')");

        Assert.Equal(4, columns);
        Assert.Equal([4.0, 5, 6], stored.Single().Edges);
        Assert.Equal(50, stored.Single().Counts.Sum());
        Assert.Equal(4, rows.Select(r => r.Start).Distinct().Count());
        Assert.Equal(4 * 4 * 6, rows.Count);
        Assert.All(rows, r => Assert.True(r.Value is null && !r.Drifted && r.NCurrent == 0 && r.NBaseline == 50, $"{r.Column} {r.Metric}"));
        var window = await Database.DataSource.FailsAsync($"SELECT * FROM mad.drift('{name}', NULL, '90 minutes')");
        Assert.Contains("A drift window is a whole number of hours", window.MessageText, StringComparison.Ordinal);
    }

    /// <summary>A ready iris model bound to a 50-row flowers table (not refreshed).</summary>
    private async Task<(string Model, string Source)> BoundModelAsync()
    {
        var (model, tables) = await BatchTables.ReadyModelAsync(Database);
        var source = Sql.UniqueName("flowers");
        await DriftRows.CreatePostgresAsync(Database.DataSource, source, 50, seed: 3);
        await BatchTables.CreateAsync(tables, Sql.UniqueName("scores"), source, model);
        return (model, source);
    }
}

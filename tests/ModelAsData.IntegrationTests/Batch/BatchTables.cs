using System.Globalization;
using ModelAsData.IntegrationTests.Postgres;
using ModelAsData.Postgres.Jobs;

namespace ModelAsData.IntegrationTests.Batch;

/// <summary>Source tables of iris-like rows, ready models, and the checks every refresh test makes.</summary>
internal static class BatchTables
{
    public const string IrisFeatures = """{"float_input": ["sepal_length", "sepal_width", "petal_length", "petal_width"]}""";

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    /// <summary>A table of <paramref name="rows"/> flowers keyed 1..rows, with deterministic features of several numeric types.</summary>
    public static async Task<string> CreateFlowersAsync(NpgsqlDataSource dataSource, int rows, string? name = null)
    {
        name ??= Sql.UniqueName("flowers");
        await dataSource.ExecuteAsync($"""
            CREATE TABLE public.{name} (id bigint PRIMARY KEY, sepal_length real, sepal_width real, petal_length double precision, petal_width numeric);
            INSERT INTO public.{name}
            SELECT g, 4.3 + (g % 37) * 0.1, 2.0 + (g % 23) * 0.1, 1.0 + (g % 59) * 0.1, 0.1 + (g % 25) * 0.1 FROM generate_series(1, {rows.ToString(CultureInfo.InvariantCulture)}) g;
            """);
        return name;
    }

    public static Task<(string Model, PostgresPredictionTables Tables)> ReadyModelAsync(PostgresDatabase database, string file = "skl2onnx_rf_iris.onnx") =>
        ReadyModelAsync(database.DataSource, file);

    public static async Task<(string Model, PostgresPredictionTables Tables)> ReadyModelAsync(NpgsqlDataSource dataSource, string file = "skl2onnx_rf_iris.onnx")
    {
        var registry = new PostgresModelRegistry(dataSource);
        var model = Sql.UniqueName("iris");
        var pushed = await registry.PushReadyAsync(model, file);
        // A running sidecar may have claimed the version first (SKIP LOCKED): wait for its verdict.
        await registry.WaitForValidationAsync(model, pushed.Version, TimeSpan.FromSeconds(30), Ct);
        return (model, new PostgresPredictionTables(registry, TimeSpan.FromMilliseconds(50)));
    }

    /// <summary>A ready iris model with a second ready version and its production alias on version 1, for a test to move to 2.</summary>
    public static async Task<(string Model, PostgresPredictionTables Tables, PostgresModelRegistry Registry)> TwoReadyVersionsAsync(PostgresDatabase database)
    {
        var registry = new PostgresModelRegistry(database.DataSource);
        var (model, tables) = await ReadyModelAsync(database);
        var second = await Postgres.ReadyModels.PushReadyAsync(registry, model, "skl2onnx_rf_iris.onnx");
        await registry.WaitForValidationAsync(model, second.Version, TimeSpan.FromSeconds(30), Ct);
        await registry.SetAliasAsync(model, "production", 1, cancellationToken: Ct);
        return (model, tables, registry);
    }

    public static Task<PredictionTable> CreateAsync(PostgresPredictionTables tables, string name, string source, string model) =>
        tables.CreateAsync(new PredictionTableSpec(name, source, ["id"], model, Core.FeatureMapping.Parse(IrisFeatures)), Ct);

    /// <summary>Every source row has exactly one prediction, and no prediction lacks its source row.</summary>
    public static async Task AssertOnePredictionPerRowAsync(NpgsqlDataSource dataSource, string source, string table)
    {
        var counts = await dataSource.QueryAsync<(long Source, long Joined, long Outputs, long Distinct)>($"""
            SELECT (SELECT count(*) FROM public.{source}),
                   (SELECT count(*) FROM public.{source} s JOIN mad_out.{table} p USING (id)),
                   (SELECT count(*) FROM mad_out.{table}),
                   (SELECT count(DISTINCT id) FROM mad_out.{table})
            """);
        var (sourceRows, joined, outputs, distinct) = counts.Single();
        Assert.Equal(sourceRows, joined);
        Assert.Equal(sourceRows, outputs);
        Assert.Equal(sourceRows, distinct);
    }

    /// <summary>Makes refreshes of this database split into many small tasks.</summary>
    public static Task SmallTasksAsync(NpgsqlDataSource dataSource, int rowsPerTask, int maxTasks = 200) =>
        dataSource.ExecuteAsync("""
            UPDATE mad.settings SET value = @rows WHERE name = 'refresh_task_rows';
            UPDATE mad.settings SET value = @max WHERE name = 'refresh_max_tasks';
            """, new { rows = rowsPerTask.ToString(CultureInfo.InvariantCulture), max = maxTasks.ToString(CultureInfo.InvariantCulture) });

    public static Task<RefreshJob> WaitAsync(PostgresPredictionTables tables, long job, int seconds = 40)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(Ct);
        timeout.CancelAfter(TimeSpan.FromSeconds(seconds));
        return tables.WaitForJobAsync(job, cancellationToken: timeout.Token);
    }
}

using ModelAsData.IntegrationTests.Postgres;

namespace ModelAsData.IntegrationTests.Batch;

/// <summary>What mad.create_prediction_table refuses, and that its messages say what to run.</summary>
public sealed class BindingRefusalTests(PostgresDatabase database) : DatabaseTests(database)
{
    [Fact(Timeout = 60_000)]
    public async Task A_name_taken_already_is_refused_with_the_refresh_to_run_instead()
    {
        var (model, tables) = await BatchTables.ReadyModelAsync(Database);
        var source = await BatchTables.CreateFlowersAsync(Database.DataSource, 3);
        var name = Sql.UniqueName("twice");
        await BatchTables.CreateAsync(tables, name, source, model);

        var error = await Database.DataSource.FailsAsync($"SELECT mad.create_prediction_table('{name}', 'public.{source}', '{{id}}', '{model}', '{BatchTables.IrisFeatures}')");

        Assert.Equal(PostgresErrorCodes.UniqueViolation, error.SqlState);
        Assert.Equal($"Prediction table '{name}' already exists; refresh it with: SELECT mad.refresh('{name}');", error.MessageText);
    }

    [Fact(Timeout = 60_000)]
    public async Task A_model_that_rows_cannot_feed_is_refused_with_the_reason_and_nothing_is_created()
    {
        // ONNX's own node test Max on uint64 tensors, as an older release stored it: a ready version (it scores over
        // HTTP) marked tensor_only and without columns, from before uint64 outputs had columns (053). Such a version
        // stays refused until it is pushed again; a version validated today has its columns (Uint64TableTests).
        var registry = new PostgresModelRegistry(Database.DataSource);
        var model = Sql.UniqueName("uint64_max");
        var file = Path.Combine(TestModels.Folder, "..", "..", "onnx-node-tests", "node", "test_max_uint64", "model.onnx");
        var version = await registry.PushReadyAsync(model, file);
        Assert.Null(await Database.DataSource.ScalarAsync<string?>("SELECT signature ->> 'tensor_only' FROM mad.model_versions WHERE model = @model", new { model }));
        var reason = "output 'result' holds uint64 values, which no column type of both stores holds exactly";
        await Database.DataSource.ExecuteAsync("UPDATE mad.model_versions SET signature = signature || jsonb_build_object('tensor_only', @reason::text, 'columns', '[]'::jsonb) WHERE model = @model", new { model, reason });
        Assert.Equal(VersionStatus.Ready, version.Status);
        await Database.DataSource.ExecuteAsync($"CREATE TABLE public.{model} (id bigint PRIMARY KEY, x smallint, y smallint)");
        var name = Sql.UniqueName("pixels");

        var error = await Database.DataSource.FailsAsync($$"""SELECT mad.create_prediction_table('{{name}}', 'public.{{model}}', '{id}', '{{model}}', '{"x": ["x"], "y": ["y"]}')""");

        Assert.Equal("22M01", error.SqlState);
        Assert.Equal($"Model {model}@1 cannot score rows of a table: {reason}.", error.MessageText);
        Assert.Contains("whose inputs rows can feed", error.Hint, StringComparison.Ordinal);
        Assert.Equal(0L, await Database.DataSource.ScalarAsync<long>("SELECT count(*) FROM mad.prediction_tables WHERE name = @name", new { name }));
        Assert.Null(await Database.DataSource.ScalarAsync<string?>("SELECT to_regclass(@t)::text", new { t = $"mad_out.{name}" }));
    }
}

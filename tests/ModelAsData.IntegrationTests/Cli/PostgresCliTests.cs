namespace ModelAsData.IntegrationTests.Cli;

/// <summary>The same `mad` verbs on PostgreSQL as on SQLite, through the real parser, against the test server.</summary>
public sealed class PostgresCliTests(PostgresDatabase database) : MadCliTests(database)
{
    [Fact(Timeout = 60_000)]
    public async Task Push_with_alias_waits_for_the_sidecar_then_list_show_predict_and_rollback_work()
    {
        await using var sidecar = await RunningSidecar.StartAsync(Database.ConnectionString);
        var model = Sql.UniqueName("cli");
        var file = System.IO.Path.Combine(TestModels.Folder, "skl2onnx_rf_iris.onnx");

        var first = await RunAsync("models", "push", model, file, "--alias", "production", "--meta", "team=flowers");
        Assert.True(first.ExitCode == 0, first.Output);
        Assert.Contains($"{model}@production → 1", first.Output);
        var second = await RunAsync("models", "push", model, file, "--alias", "production");
        Assert.Contains($"{model}@production → 2 (was 1)", second.Output);

        var list = await RunAsync("models", "list");
        Assert.Contains(model, list.Output);
        Assert.Contains("production → 2", list.Output);

        var show = await RunAsync("models", "show", $"{model}@1");
        Assert.Contains("ready", show.Output);
        Assert.Contains("float_input float[-1,4]", show.Output);
        Assert.Contains("\"team\":\"flowers\"", show.Output);

        var predict = await RunAsync("predict", model, "--json", """{"float_input": [7.0, 3.2, 4.7, 1.4]}""");
        Assert.True(predict.ExitCode == 0, predict.Output);
        Assert.Contains($$"""{"model":"{{model}}","version":2,"label":1""", predict.Output);

        var rollback = await RunAsync("models", "rollback", model, "production");
        Assert.Contains($"{model}@production → 1 (rolled back from 2)", rollback.Output);
        var history = await RunAsync("models", "history", model, "production");
        Assert.Contains("rollback", history.Output);
    }

    [Fact(Timeout = 60_000)]
    public async Task Push_with_alias_and_no_sidecar_times_out_saying_to_start_one()
    {
        var result = await RunAsync("models", "push", Sql.UniqueName("nosidecar"), System.IO.Path.Combine(TestModels.Folder, "skl2onnx_rf_iris.onnx"), "--alias", "production", "--wait", "00:00:02");
        Assert.Equal(19, result.ExitCode);
        Assert.Contains("mad serve", result.Output);
    }

    [Fact(Timeout = 60_000)]
    public async Task Malformed_model_is_refused_before_anything_is_stored()
    {
        var path = System.IO.Path.Combine(System.IO.Path.GetTempPath(), $"mad-bad-{Guid.NewGuid():N}.onnx");
        await File.WriteAllBytesAsync(path, "not a model"u8.ToArray(), Ct);
        try
        {
            var model = Sql.UniqueName("bad");
            var result = await RunAsync("models", "push", model, path);
            Assert.Equal(11, result.ExitCode);
            Assert.Contains("ONNX Runtime cannot load the model", result.Output);
            Assert.Equal(0, await Database.DataSource.ScalarAsync<int>("SELECT count(*) FROM mad.model_versions WHERE model = @model", new { model }));
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Fact(Timeout = 60_000)]
    public async Task Migrate_is_idempotent_and_serve_refuses_a_sqlite_file()
    {
        Assert.Equal(0, (await RunAsync("db", "migrate")).ExitCode);
        Assert.Contains("postgres registry is up to date", (await RunAsync("db", "migrate")).Output);

        var serve = await RunWithDbAsync("demo.db", "serve");
        Assert.Equal(18, serve.ExitCode);
        Assert.Contains("runs beside PostgreSQL", serve.Output);
    }

    [Fact(Timeout = 60_000)]
    public async Task Unknown_model_exits_12_naming_what_exists()
    {
        var result = await RunAsync("predict", "no_such_model_here", "--json", "{}");
        Assert.Equal(12, result.ExitCode);
        Assert.Contains("no_such_model_here", result.Output);
    }
}

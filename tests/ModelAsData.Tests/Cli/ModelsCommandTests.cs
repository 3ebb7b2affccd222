using ModelAsData.Sqlite;
using ModelAsData.Tests.Sqlite;

namespace ModelAsData.Tests.Cli;

[Collection(CliCollection.Name)]
public sealed class ModelsCommandTests() : SqliteFileCliTests("cli.db")
{
    [Fact]
    public async Task Push_list_show_alias_rollback_and_history_work_together()
    {
        var push = await MadRunner.RunAsync("models", "push", "--db", Db, "iris", TestModels.External("skl2onnx_rf_iris.onnx"), "--alias", "production", "--meta", "trained_on=2026-11", "--meta", "rows=150");
        Assert.True(push.ExitCode == 0, push.ToString());
        Assert.Contains("Pushed iris@1 (61,224 bytes, sha256 11646bde97b0…): ready.", push.Output);
        Assert.Contains("inputs:  float_input float[-1,4]", push.Output);
        Assert.Contains("columns: label, probability_0, probability_1, probability_2", push.Output);
        Assert.Contains("iris@production → 1", push.Output);

        var second = await MadRunner.RunAsync("models", "push", "--db", Db, "iris", TestModels.External("skl2onnx_rf_iris.onnx"));
        Assert.Contains("Pushed iris@2", second.Output);

        var list = await MadRunner.RunAsync("models", "list", "--db", Db);
        Assert.Equal(0, list.ExitCode);
        Assert.Matches(@"iris\s*│\s*2\s*│\s*2\s*│\s*production → 1", list.Output);

        var show = await MadRunner.RunAsync("models", "show", "--db", Db, "iris");
        Assert.Equal(0, show.ExitCode);
        Assert.Contains("iris@1", show.Output);
        Assert.Matches(@"status\s+ready", show.Output);
        Assert.Matches(@"aliases\s+production", show.Output);
        Assert.Contains("11646bde97b0b0f9f6aa34db4496800477784cf9cea39c8c726cab918a0ed4f2", show.Output);
        Assert.Contains("61,224 bytes", show.Output);
        Assert.Contains("\"trained_on\":\"2026-11\"", show.Output);
        Assert.Contains("\"rows\":150", show.Output);
        Assert.Contains("float_input float[-1,4]", show.Output);
        Assert.Contains("label integer, probability_0 real", show.Output);

        var alias = await MadRunner.RunAsync("models", "alias", "--db", Db, "iris", "production", "2", "--reason", "better recall");
        Assert.Equal(0, alias.ExitCode);
        Assert.Contains("iris@production → 2 (was 1)", alias.Output);
        Assert.Contains("iris@2", (await MadRunner.RunAsync("models", "show", "--db", Db, "iris@production")).Output);

        var rollback = await MadRunner.RunAsync("models", "rollback", "--db", Db, "iris", "production");
        Assert.Equal(0, rollback.ExitCode);
        Assert.Contains("iris@production → 1 (rolled back from 2)", rollback.Output);

        var history = await MadRunner.RunAsync("models", "history", "--db", Db, "iris", "production");
        Assert.Equal(0, history.ExitCode);
        var lines = history.Output.Split('\n').Where(l => l.Contains(Environment.UserName, StringComparison.Ordinal)).ToList();
        Assert.Equal(3, lines.Count);
        Assert.Contains("rollback of the move to version 2", lines[0]);
        Assert.Contains("better recall", lines[1]);
        Assert.Contains("pushed with --alias", lines[2]);
    }

    [Fact]
    public async Task List_of_an_empty_registry_says_how_to_push()
    {
        var list = await MadRunner.RunAsync("models", "list", "--db", Db);
        Assert.True(list.ExitCode == 0, list.ToString());
        Assert.Contains("No models yet. Push one with: mad models push NAME FILE.onnx --alias production", list.Output);
    }

    [Theory]
    [InlineData("truncated")]
    [InlineData("random")]
    [InlineData("custom_op")]
    public async Task Pushing_a_malformed_model_exits_11_with_the_reason_and_registers_nothing(string kind)
    {
        Assert.Equal(0, (await MadRunner.RunAsync("models", "push", "--db", Db, "keep", TestModels.External("skl2onnx_logreg_iris.onnx"))).ExitCode);
        var file = Path.Combine(Folder, "bad.onnx");
        var random = new byte[2048];
        new Random(3).NextBytes(random);
        await File.WriteAllBytesAsync(file, kind switch
        {
            "truncated" => TestModels.ExternalBytes("skl2onnx_rf_iris.onnx")[..500],
            "random" => random,
            _ => TestModels.ExternalBytes("ortext_custom_op_negpos.onnx"),
        });

        var push = await MadRunner.RunAsync("models", "push", "--db", Db, "broken", file);

        Assert.Equal(11, push.ExitCode);
        Assert.Contains("error: ONNX Runtime cannot load the model", push.Output);
        var list = await MadRunner.RunAsync("models", "list", "--db", Db);
        Assert.Contains("keep", list.Output);
        Assert.DoesNotContain("broken", list.Output);
        Assert.Equal(12, (await MadRunner.RunAsync("models", "show", "--db", Db, "broken")).ExitCode);
    }

    [Fact]
    public async Task Pushing_a_missing_file_says_which_file()
    {
        var missing = Path.Combine(Folder, "nope.onnx");
        var push = await MadRunner.RunAsync("models", "push", "--db", Db, "iris", missing);
        Assert.Equal(18, push.ExitCode);
        Assert.Contains($"error: No file {missing}: give the path of an .onnx file.", push.Output);
        Assert.False(File.Exists(missing));
    }

    [Fact]
    public async Task Missing_db_exits_18_and_says_how_to_give_one()
    {
        Environment.SetEnvironmentVariable("MAD_DB", null);
        foreach (var args in new[] { new[] { "models", "list" }, ["models", "show", "iris"], ["predict", "iris", "--json", "{}"], ["sql", "SELECT 1"], ["tables", "list"] })
        {
            var result = await MadRunner.RunAsync(args);
            Assert.True(result.ExitCode == 18, result.ToString());
            Assert.Contains("error: No database given: pass --db demo.db (a SQLite file)", result.Output);
            Assert.Contains("or set MAD_DB", result.Output);
        }
    }

    [Fact]
    public async Task Unknown_model_alias_or_version_exits_12_naming_what_exists()
    {
        await MadRunner.RunAsync("models", "push", "--db", Db, "iris", TestModels.External("skl2onnx_rf_iris.onnx"));

        var model = await MadRunner.RunAsync("models", "show", "--db", Db, "churn");
        Assert.Equal(12, model.ExitCode);
        Assert.Contains("Model 'churn' does not exist; the models are 'iris'.", model.Output);

        var alias = await MadRunner.RunAsync("models", "show", "--db", Db, "iris@staging");
        Assert.Equal(12, alias.ExitCode);
        Assert.Contains("Model 'iris' has no alias 'staging'; it has no aliases.", alias.Output);

        var version = await MadRunner.RunAsync("models", "alias", "--db", Db, "iris", "production", "5");
        Assert.Equal(12, version.ExitCode);
        Assert.Contains("Model 'iris' has no version 5; its versions are 1 (ready).", version.Output);

        var rollback = await MadRunner.RunAsync("models", "rollback", "--db", Db, "iris", "production");
        Assert.Equal(12, rollback.ExitCode);
    }

    [Theory]
    [InlineData("Iris")]
    [InlineData("iris; DROP TABLE mad_models")]
    [InlineData("a\"b")]
    public async Task Invalid_model_names_exit_10(string name)
    {
        var push = await MadRunner.RunAsync("models", "push", "--db", Db, name, TestModels.External("skl2onnx_rf_iris.onnx"));
        Assert.Equal(10, push.ExitCode);
        Assert.Contains("Invalid model name", push.Output);
        var show = await MadRunner.RunAsync("models", "show", "--db", Db, name);
        Assert.Equal(10, show.ExitCode);
    }

    [Fact]
    public async Task Meta_without_an_equals_sign_is_an_invalid_argument()
    {
        var push = await MadRunner.RunAsync("models", "push", "--db", Db, "iris", TestModels.External("skl2onnx_rf_iris.onnx"), "--meta", "oops");
        Assert.Equal(18, push.ExitCode);
        Assert.Contains("--meta takes key=value; got 'oops'.", push.Output);
    }

    [Fact]
    public async Task Db_migrate_is_safe_to_run_twice()
    {
        Assert.Contains("The sqlite registry is up to date.", (await MadRunner.RunAsync("db", "migrate", "--db", Db)).Output);
        var again = await MadRunner.RunAsync("db", "migrate", "--db", Db);
        Assert.Equal(0, again.ExitCode);
        await using var connection = await SqliteDatabase.OpenAsync(Db);
        Assert.Equal(3L, TempDatabase.Scalar(connection, "SELECT count(*) FROM mad_schema_migrations"));
    }
}

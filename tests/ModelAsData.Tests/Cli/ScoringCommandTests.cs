using ModelAsData.Sqlite;
using ModelAsData.Tests.Sqlite;

namespace ModelAsData.Tests.Cli;

/// <summary><c>mad predict</c>, <c>mad sql</c> and <c>mad tables</c> on a SQLite file.</summary>
[Collection(CliCollection.Name)]
public sealed class ScoringCommandTests() : SqliteFileCliTests("cli.db")
{
    [Fact]
    public async Task Predict_json_prints_the_prediction_as_json()
    {
        await PushIrisAsync();
        var result = await MadRunner.RunAsync("predict", "--db", Db, "iris", "--json", """{"float_input": [7.0, 3.2, 4.7, 1.4]}""");
        Assert.True(result.ExitCode == 0, result.ToString());
        Assert.Contains("""{"model":"iris","version":1,"label":1,"probability_0":0,"probability_1":0.98999""", result.Output);

        var byVersion = await MadRunner.RunAsync("predict", "--db", Db, "iris@1", "--json", """{"float_input": [6.3, 3.3, 6.0, 2.5]}""");
        Assert.Contains("\"label\":2", byVersion.Output);
    }

    [Fact]
    public async Task Predict_with_features_that_do_not_fit_exits_14()
    {
        await PushIrisAsync();
        var width = await MadRunner.RunAsync("predict", "--db", Db, "iris", "--json", """{"float_input": [7.0, 3.2]}""");
        Assert.Equal(14, width.ExitCode);
        Assert.Contains("input 'float_input' takes 4 value(s); 2 given", width.Output);

        var text = await MadRunner.RunAsync("predict", "--db", Db, "iris", "--json", """{"float_input": [7.0, "x", 1, 2]}""");
        Assert.Equal(14, text.ExitCode);
        Assert.Contains("text 'x' cannot feed input 'float_input' (float)", text.Output);

        var json = await MadRunner.RunAsync("predict", "--db", Db, "iris", "--json", "{float_input");
        Assert.Equal(18, json.ExitCode);
        Assert.Contains("Features are not valid JSON", json.Output);
    }

    [Fact]
    public async Task Predict_of_an_unknown_model_exits_12()
    {
        await PushIrisAsync();
        var result = await MadRunner.RunAsync("predict", "--db", Db, "churn", "--json", """{"tenure": 3}""");
        Assert.Equal(12, result.ExitCode);
        Assert.Contains("Model 'churn' does not exist", result.Output);
    }

    [Fact]
    public async Task Predict_without_json_is_a_parse_error_that_names_the_option()
    {
        var result = await MadRunner.RunAsync("predict", "--db", Db, "iris");
        Assert.Equal(1, result.ExitCode);
        Assert.Contains("--json", result.Output);
    }

    [Fact]
    public async Task Sql_runs_a_statement_with_predict_registered_and_prints_a_table()
    {
        await PushIrisAsync();
        var create = await MadRunner.RunAsync("sql", "--db", Db, "CREATE TABLE f (id INTEGER PRIMARY KEY, a REAL, b REAL, c REAL, d REAL); INSERT INTO f VALUES (1, 5.1, 3.5, 1.4, 0.2), (2, 6.3, 3.3, 6.0, 2.5)");
        Assert.True(create.ExitCode == 0, create.ToString());
        Assert.Contains("row(s) changed", create.Output);

        var result = await MadRunner.RunAsync("sql", "--db", Db, "SELECT id, predict('iris', a, b, c, d) AS label, round(predict_proba('iris@production', 2, a, b, c, d), 3) AS p2, predict_version('iris') AS v FROM f ORDER BY id");
        Assert.Equal(0, result.ExitCode);
        Assert.Matches(@"id\s*│\s*label\s*│\s*p2\s*│\s*v", result.Output);
        Assert.Matches(@"1\s*│\s*0\s*│\s*0\s*│\s*1", result.Output);
        Assert.Matches(@"2\s*│\s*2\s*│\s*1\s*│\s*1", result.Output);
        Assert.Contains("2 row(s)", result.Output);
    }

    [Fact]
    public async Task Sql_prompt_runs_statements_until_an_empty_line_and_survives_an_error()
    {
        await PushIrisAsync();
        var typed = "SELECT predict('iris',\n 6.3, 3.3, 6.0, 2.5) AS label;\nSELEC 1;\nSELECT predict_version('iris') AS v;\n\nSELECT 'not run';\n";

        var result = await MadRunner.RunWithInputAsync(typed, "sql", "--db", Db);

        Assert.True(result.ExitCode == 0, result.ToString());
        Assert.Contains("mad> ", result.Output);
        Assert.Contains("  -> ", result.Output);
        Assert.Matches(@"label\s*│[\s\S]*│ 2 ", result.Output);
        Assert.Contains("syntax error", result.Output);
        Assert.Matches(@"v\s*│[\s\S]*│ 1 ", result.Output);
        Assert.DoesNotContain("not run", result.Output);
    }

    [Fact]
    public async Task Sql_errors_exit_1_with_sqlites_message_and_predict_errors_name_the_feature()
    {
        await PushIrisAsync();
        var syntax = await MadRunner.RunAsync("sql", "--db", Db, "SELEC 1");
        Assert.Equal(1, syntax.ExitCode);
        Assert.Contains("error:", syntax.Output);
        Assert.Contains("syntax error", syntax.Output);

        var feature = await MadRunner.RunAsync("sql", "--db", Db, "SELECT predict('iris', 1, NULL, 3, 4)");
        Assert.Equal(1, feature.ExitCode);
        Assert.Contains("Model 'iris', feature 2: null cannot feed input 'float_input'[1] (float).", feature.Output);

        var injection = await MadRunner.RunAsync("sql", "--db", Db, "SELECT predict('iris; DROP TABLE mad_models', 1, 2, 3, 4)");
        Assert.Equal(1, injection.ExitCode);
        Assert.Contains("Invalid model name 'iris; DROP TABLE mad_models'", injection.Output);
        Assert.Contains("iris", (await MadRunner.RunAsync("models", "list", "--db", Db)).Output);
    }

    [Fact]
    public async Task Tables_create_refresh_status_and_list_score_a_source_table()
    {
        await PushIrisAsync();
        await CreateFlowersAsync();

        var create = await MadRunner.RunAsync("tables", "create", "--db", Db, "flower_scores", "--model", "iris", "--source", "flowers", "--key", "id",
            "--features", """{"float_input": ["sl", "sw", "pl", "pw"]}""");
        Assert.True(create.ExitCode == 0, create.ToString());
        Assert.Contains("Created mad_out_flower_scores: id → label, probability_0, probability_1, probability_2, model_version, scored_at, error.", create.Output);
        Assert.Contains("""Features: {"float_input":["sl","sw","pl","pw"]}""", create.Output);
        Assert.Contains("Score it with: mad tables refresh flower_scores", create.Output);

        var refresh = await MadRunner.RunAsync("tables", "refresh", "--db", Db, "flower_scores");
        Assert.True(refresh.ExitCode == 0, refresh.ToString());
        Assert.Contains("Scored 4 rows of flower_scores with iris@1", refresh.Output);
        Assert.Contains("1 with an error.", refresh.Output);

        var status = await MadRunner.RunAsync("tables", "status", "--db", Db, "flower_scores");
        Assert.Equal(0, status.ExitCode);
        Assert.Matches(@"flower_scores\s*│\s*flowers\s*│\s*id\s*│\s*iris\s*│\s*mad_out_flower_scores\s*│[^│]+│\s*1\s*│\s*4\s*│\s*1", status.Output);
        Assert.Contains("columns:  label, probability_0, probability_1, probability_2", status.Output);

        var list = await MadRunner.RunAsync("tables", "list", "--db", Db);
        Assert.Equal(0, list.ExitCode);
        Assert.Contains("mad_out_flower_scores", list.Output);

        var join = await MadRunner.RunAsync("sql", "--db", Db, "SELECT f.id, p.label, p.model_version, p.error FROM flowers f JOIN mad_out_flower_scores p USING (id) ORDER BY f.id");
        Assert.Matches(@"1\s*│\s*0\s*│\s*1\s*│\s*NULL", join.Output);
        Assert.Matches(@"3\s*│\s*NULL\s*│\s*1\s*│\s*column sl: text 'n/a' cannot feed input 'float_input' \(float\)", join.Output);
        Assert.Matches(@"4\s*│\s*2\s*│\s*1\s*│\s*NULL", join.Output);
    }

    [Fact]
    public async Task Tables_errors_exit_with_their_codes()
    {
        await PushIrisAsync();
        await CreateFlowersAsync();
        string[] create = ["tables", "create", "--db", Db, "flower_scores", "--model", "iris", "--source", "flowers", "--key", "id"];

        var unmapped = await MadRunner.RunAsync(create);
        Assert.Equal(18, unmapped.ExitCode); // InvalidArgument, as mad.map_features raises it
        Assert.Contains("input float_input float[-1,4] takes 4 value(s) per row", unmapped.Output);

        var badJson = await MadRunner.RunAsync([.. create, "--features", "{oops"]);
        Assert.Equal(18, badJson.ExitCode);
        Assert.Contains("Features are not valid JSON", badJson.Output);

        var source = await MadRunner.RunAsync("tables", "create", "--db", Db, "s", "--model", "iris", "--source", "flowers; DROP TABLE flowers", "--key", "id");
        Assert.Equal(12, source.ExitCode);
        Assert.Contains("No table or view 'flowers; DROP TABLE flowers'", source.Output);

        var features = """{"float_input": ["sl", "sw", "pl", "pw"]}""";
        Assert.Equal(0, (await MadRunner.RunAsync([.. create, "--features", features])).ExitCode);
        var twice = await MadRunner.RunAsync([.. create, "--features", features]);
        Assert.Equal(15, twice.ExitCode);
        Assert.Contains("Prediction table 'flower_scores' already exists", twice.Output);

        var unknown = await MadRunner.RunAsync("tables", "refresh", "--db", Db, "nope");
        Assert.Equal(12, unknown.ExitCode);
        Assert.Contains("No prediction table 'nope' (tables: flower_scores)", unknown.Output);
    }

    [Fact]
    public async Task Tables_create_accepts_comma_separated_keys()
    {
        Assert.Equal(0, (await MadRunner.RunAsync("models", "push", "--db", Db, "gbc", TestModels.External("skl2onnx_2018_gbc_strlabels_batch1.onnx"))).ExitCode);
        await using (var connection = await SqliteDatabase.OpenAsync(Db))
        {
            TempDatabase.Execute(connection, "CREATE TABLE obs (region TEXT, n INTEGER, input REAL, b REAL, PRIMARY KEY (region, n))");
            TempDatabase.Execute(connection, "INSERT INTO obs VALUES ('north', 1, 1, 1), ('south', 1, 0, 1)");
        }

        var create = await MadRunner.RunAsync("tables", "create", "--db", Db, "obs_scores", "--model", "gbc@1", "--source", "obs", "--key", "region, n", "--features", """{"input": ["input", "b"]}""");
        Assert.True(create.ExitCode == 0, create.ToString());
        Assert.Contains("region, n → label, probabilities_a, probabilities_b", create.Output);
        Assert.Equal(0, (await MadRunner.RunAsync("tables", "refresh", "--db", Db, "obs_scores")).ExitCode);
        var rows = await MadRunner.RunAsync("sql", "--db", Db, "SELECT region || '/' || label AS r FROM mad_out_obs_scores ORDER BY region");
        Assert.Contains("north/B", rows.Output);
        Assert.Contains("south/A", rows.Output);
    }

    private async Task PushIrisAsync()
    {
        var push = await MadRunner.RunAsync("models", "push", "--db", Db, "iris", TestModels.External("skl2onnx_rf_iris.onnx"), "--alias", "production");
        Assert.True(push.ExitCode == 0, push.ToString());
    }

    private async Task CreateFlowersAsync()
    {
        await using var connection = await SqliteDatabase.OpenAsync(Db);
        TempDatabase.Execute(connection, "CREATE TABLE flowers (id INTEGER PRIMARY KEY, sl REAL, sw REAL, pl REAL, pw REAL)");
        TempDatabase.Execute(connection, "INSERT INTO flowers VALUES (1, 5.1, 3.5, 1.4, 0.2), (2, 7.0, 3.2, 4.7, 1.4), (3, 'n/a', 3.3, 6.0, 2.5), (4, 6.3, 3.3, 6.0, 2.5)");
    }
}

using System.Text.Json.Nodes;
using ModelAsData.Core;
using ModelAsData.Core.Registry;
using ModelAsData.Sqlite;

namespace ModelAsData.Tests.Sqlite;

public sealed class SqlitePredictionTablesTests
{
    private const string IrisFeatures = """{"float_input": ["sepal_length", "sepal_width", "petal_length", "petal_width"]}""";

    /// <summary>The MANIFEST's three iris rows and the labels the random forest gives them.</summary>
    private static readonly (double[] Features, long Label)[] s_iris =
    [
        ([5.1, 3.5, 1.4, 0.2], 0),
        ([7.0, 3.2, 4.7, 1.4], 1),
        ([6.3, 3.3, 6.0, 2.5], 2),
    ];

    [Fact]
    public async Task Null_features_map_inputs_to_columns_by_name_and_refresh_scores_every_row()
    {
        await using var db = await TempDatabase.CreateAsync();
        await db.PushAsync("titanic", "skl2onnx_pipeline_titanic_nozipmap.onnx");
        db.Execute("CREATE TABLE passengers (id INTEGER PRIMARY KEY, PClass INTEGER, sex TEXT, age REAL, fare REAL, embarked TEXT, name TEXT)");
        db.Execute("INSERT INTO passengers VALUES (1, 1, 'female', 29, 211.3375, 'S', 'Allen'), (2, 3, 'male', 22, 7.25, 'S', 'Braund'), (3, 4, 'unknown', 30, 13, 'Z', 'X')");
        var tables = new SqlitePredictionTables(db.Registry);

        var table = await tables.CreateAsync(new PredictionTableSpec("passenger_scores", "passengers", ["id"], "titanic", null));
        Assert.Equal("mad_out_passenger_scores", table.OutputTable);
        Assert.Equal("""{"pclass":["PClass"],"sex":["sex"],"age":["age"],"fare":["fare"],"embarked":["embarked"]}""", table.Features.ToJsonString());
        Assert.Null(table.RefreshedAt);

        var result = await tables.RefreshAsync("passenger_scores");
        Assert.Equal((3L, 0L, 1), (result.Rows, result.Failed, result.Version.Version));
        var rows = db.Rows("SELECT id, label, probabilities_1, model_version, error FROM mad_out_passenger_scores ORDER BY id");
        Assert.Equal([1L, 0L, 1L], rows.Select(r => r["label"]));
        Assert.Equal(0.88553804, (double)rows[0]["probabilities_1"]!, 1e-6);
        Assert.Equal(0.5623933, (double)rows[2]["probabilities_1"]!, 1e-6);
        Assert.All(rows, r => Assert.Equal(1L, r["model_version"]));
        Assert.All(rows, r => Assert.Null(r["error"]));
    }

    [Fact]
    public async Task Source_table_names_match_without_case_as_in_sqlite()
    {
        await using var db = await IrisAndFlowersAsync(rows: 3);
        var tables = new SqlitePredictionTables(db.Registry);

        var table = await tables.CreateAsync(new PredictionTableSpec("flower_scores", "FLOWERS", ["id"], "iris", FeatureMapping.Parse(IrisFeatures)));

        Assert.Equal("flowers", table.Source);
        Assert.Equal(3L, (await tables.RefreshAsync("flower_scores")).Rows);
    }

    [Fact]
    public async Task A_repeated_source_key_fails_the_refresh_and_keeps_the_previous_predictions()
    {
        await using var db = await TempDatabase.CreateAsync();
        await db.PushAsync("iris", "skl2onnx_rf_iris.onnx");
        db.Execute("CREATE TABLE loose (id INTEGER, sepal_length REAL, sepal_width REAL, petal_length REAL, petal_width REAL)");
        db.Execute("INSERT INTO loose VALUES (1, 5.1, 3.5, 1.4, 0.2), (2, 7.0, 3.2, 4.7, 1.4)");
        var tables = new SqlitePredictionTables(db.Registry);
        await tables.CreateAsync(new PredictionTableSpec("loose_scores", "loose", ["id"], "iris", FeatureMapping.Parse(IrisFeatures)));
        await tables.RefreshAsync("loose_scores");
        db.Execute("INSERT INTO loose SELECT * FROM loose");

        var e = await Assert.ThrowsAsync<ModelAsDataException>(() => tables.RefreshAsync("loose_scores"));

        Assert.Equal(ErrorCode.Conflict, e.Code);
        Assert.Contains("repeated or null", e.Message);
        Assert.Equal(2L, db.Scalar("SELECT count(*) FROM mad_out_loose_scores"));
    }

    [Fact]
    public async Task Output_table_has_typed_columns_key_version_time_and_error()
    {
        await using var db = await IrisAndFlowersAsync(rows: 3);
        var tables = new SqlitePredictionTables(db.Registry);
        var table = await tables.CreateAsync(new PredictionTableSpec("flower_scores", "flowers", ["ID"], "iris", FeatureMapping.Parse(IrisFeatures)));

        Assert.Equal(["id"], table.Key);
        Assert.Equal(["label", "probability_0", "probability_1", "probability_2"], table.Columns.Select(c => c.Name));
        var columns = db.Rows("SELECT name, type, \"notnull\", pk FROM pragma_table_info('mad_out_flower_scores') ORDER BY cid");
        Assert.Equal(
            [
                "id INTEGER 0 1", "label INTEGER 0 0", "probability_0 REAL 0 0", "probability_1 REAL 0 0", "probability_2 REAL 0 0",
                "model_version INTEGER 1 0", "scored_at TEXT 1 0", "error TEXT 0 0", "arm TEXT 1 0",
            ],
            columns.Select(c => $"{c["name"]} {c["type"]} {c["notnull"]} {c["pk"]}"));
    }

    [Fact]
    public async Task Refresh_scores_every_row_with_its_version_and_time_and_records_the_refresh()
    {
        await using var db = await IrisAndFlowersAsync(rows: 3000);
        var tables = new SqlitePredictionTables(db.Registry);
        await tables.CreateAsync(new PredictionTableSpec("flower_scores", "flowers", ["id"], "iris", FeatureMapping.Parse(IrisFeatures)));
        var reports = new List<RefreshProgress>();
        var before = DateTimeOffset.UtcNow.AddSeconds(-1);

        var result = await tables.RefreshAsync("flower_scores", new SynchronousProgress(reports.Add));

        Assert.Equal((3000L, 0L), (result.Rows, result.Failed));
        Assert.Equal(new RefreshProgress(3000, 3000), reports[^1]);
        Assert.Equal(3000L, db.Scalar("SELECT count(*) FROM mad_out_flower_scores WHERE model_version = 1 AND error IS NULL"));
        Assert.Equal(0L, db.Scalar("SELECT count(*) FROM flowers f JOIN mad_out_flower_scores p USING (id) WHERE p.label <> f.expected"));
        Assert.Equal(1L, db.Scalar("SELECT count(DISTINCT scored_at) FROM mad_out_flower_scores"));
        var scoredAt = DateTimeOffset.Parse((string)db.Scalar("SELECT scored_at FROM mad_out_flower_scores LIMIT 1")!, System.Globalization.CultureInfo.InvariantCulture);
        Assert.InRange(scoredAt, before, DateTimeOffset.UtcNow.AddSeconds(1));

        var status = await tables.GetAsync("flower_scores");
        Assert.Equal((1, 3000L, 0L), (status.RefreshedVersion, status.RowsScored, status.RowsFailed));
        Assert.NotNull(status.RefreshedAt);
        Assert.Equal(["flower_scores"], (await tables.ListAsync()).Select(t => t.Name));
    }

    [Fact]
    public async Task Rows_with_a_null_or_text_feature_get_their_error_while_the_rest_of_the_batch_is_scored()
    {
        await using var db = await IrisAndFlowersAsync(rows: 2500);
        // Failures in the middle of the first batch, at a batch edge and in the last batch.
        db.Execute("UPDATE flowers SET petal_length = NULL WHERE id IN (5, 1024, 2401)");
        db.Execute("UPDATE flowers SET sepal_width = 'wide' WHERE id IN (7, 1025, 2499)");
        var tables = new SqlitePredictionTables(db.Registry);
        await tables.CreateAsync(new PredictionTableSpec("flower_scores", "flowers", ["id"], "iris", FeatureMapping.Parse(IrisFeatures)));

        var result = await tables.RefreshAsync("flower_scores");

        Assert.Equal((2500L, 6L), (result.Rows, result.Failed));
        var failed = db.Rows("SELECT id, label, probability_0, model_version, error FROM mad_out_flower_scores WHERE error IS NOT NULL ORDER BY id");
        Assert.Equal([5L, 7L, 1024L, 1025L, 2401L, 2499L], failed.Select(r => r["id"]));
        Assert.Equal("column petal_length: null cannot feed input 'float_input'[2] (float)", failed[0]["error"]);
        Assert.Equal("column sepal_width: text 'wide' cannot feed input 'float_input' (float)", failed[1]["error"]);
        Assert.All(failed, r => Assert.Null(r["label"]));
        Assert.All(failed, r => Assert.Null(r["probability_0"]));
        Assert.All(failed, r => Assert.Equal(1L, r["model_version"]));
        Assert.Equal(2494L, db.Scalar("SELECT count(*) FROM flowers f JOIN mad_out_flower_scores p USING (id) WHERE p.error IS NULL AND p.label = f.expected"));
        Assert.Equal((2500L, 6L), ((await tables.GetAsync("flower_scores")).RowsScored, (await tables.GetAsync("flower_scores")).RowsFailed));
    }

    [Fact]
    public async Task Moving_the_alias_and_refreshing_again_rescores_with_the_new_version()
    {
        await using var db = await TempDatabase.CreateAsync();
        await db.PushAsync("iris", "skl2onnx_rf_iris.onnx");
        await db.PushAsync("iris", "skl2onnx_rf_iris.onnx", new JsonObject { ["note"] = "retrained" });
        await db.Registry.SetAliasAsync("iris", "production", 1);
        CreateFlowers(db, 50);
        var tables = new SqlitePredictionTables(db.Registry);
        await tables.CreateAsync(new PredictionTableSpec("flower_scores", "flowers", ["id"], "iris@production", FeatureMapping.Parse(IrisFeatures)));
        Assert.Equal(1, (await tables.RefreshAsync("flower_scores")).Version.Version);
        Assert.Equal([1L], db.Rows("SELECT DISTINCT model_version FROM mad_out_flower_scores").Select(r => r["model_version"]));

        await db.Registry.SetAliasAsync("iris", "production", 2);
        var result = await tables.RefreshAsync("flower_scores");

        Assert.Equal((2, 50L), (result.Version.Version, result.Rows));
        Assert.Equal([2L], db.Rows("SELECT DISTINCT model_version FROM mad_out_flower_scores").Select(r => r["model_version"]));
        Assert.Equal(2, (await tables.GetAsync("flower_scores")).RefreshedVersion);

        await db.Registry.RollbackAliasAsync("iris", "production");
        await tables.RefreshAsync("flower_scores");
        Assert.Equal([1L], db.Rows("SELECT DISTINCT model_version FROM mad_out_flower_scores").Select(r => r["model_version"]));
    }

    [Fact]
    public async Task Deleted_source_rows_disappear_and_new_ones_appear_after_refresh()
    {
        await using var db = await IrisAndFlowersAsync(rows: 30);
        var tables = new SqlitePredictionTables(db.Registry);
        await tables.CreateAsync(new PredictionTableSpec("flower_scores", "flowers", ["id"], "iris", FeatureMapping.Parse(IrisFeatures)));
        await tables.RefreshAsync("flower_scores");

        db.Execute("DELETE FROM flowers WHERE id % 3 = 0");
        db.Execute("INSERT INTO flowers VALUES (100, 6.3, 3.3, 6.0, 2.5, 2)");
        var result = await tables.RefreshAsync("flower_scores");

        Assert.Equal(21L, result.Rows);
        Assert.Equal(0L, db.Scalar("SELECT count(*) FROM mad_out_flower_scores WHERE id % 3 = 0 AND id <> 100"));
        Assert.Equal(2L, db.Scalar("SELECT label FROM mad_out_flower_scores WHERE id = 100"));
        Assert.Equal(0L, db.Scalar("SELECT count(*) FROM mad_out_flower_scores p LEFT JOIN flowers f USING (id) WHERE f.id IS NULL"));
    }

    [Fact]
    public async Task Features_from_the_models_metadata_are_used_when_none_are_given()
    {
        await using var db = await TempDatabase.CreateAsync();
        await db.PushAsync("iris", "skl2onnx_rf_iris.onnx", new JsonObject { ["features"] = JsonNode.Parse(IrisFeatures) });
        CreateFlowers(db, 6);
        var tables = new SqlitePredictionTables(db.Registry);
        var table = await tables.CreateAsync(new PredictionTableSpec("flower_scores", "flowers", ["id"], "iris", null));
        Assert.Equal("""{"float_input":["sepal_length","sepal_width","petal_length","petal_width"]}""", table.Features.ToJsonString());
        Assert.Equal(0L, (await tables.RefreshAsync("flower_scores")).Failed);
        Assert.Equal(6L, db.Scalar("SELECT count(*) FROM flowers f JOIN mad_out_flower_scores p USING (id) WHERE p.label = f.expected"));
    }

    [Fact]
    public async Task Create_without_a_mapping_for_a_wide_input_says_how_to_map_it()
    {
        await using var db = await IrisAndFlowersAsync(rows: 3);
        var tables = new SqlitePredictionTables(db.Registry);
        var e = await Assert.ThrowsAsync<ModelAsDataException>(() => tables.CreateAsync(new PredictionTableSpec("flower_scores", "flowers", ["id"], "iris", null)));
        Assert.Equal(ErrorCode.InvalidArgument, e.Code);
        Assert.Contains("input float_input float[-1,4] takes 4 value(s) per row", e.Message);
        Assert.Contains("Columns: id, sepal_length, sepal_width, petal_length, petal_width, expected.", e.Message);
        Assert.Equal(0L, db.Scalar("SELECT count(*) FROM sqlite_master WHERE name = 'mad_out_flower_scores'"));
        Assert.Empty(await tables.ListAsync());
    }

    [Fact]
    public async Task Model_whose_decoded_columns_differ_from_the_tables_is_refused_and_the_old_predictions_stay()
    {
        await using var db = await TempDatabase.CreateAsync();
        await db.PushAsync("m", "skl2onnx_rf_iris.onnx");
        await db.PushAsync("m", "onnxmltools_xgboost_regressor.onnx");
        await db.Registry.SetAliasAsync("m", "production", 1);
        CreateFlowers(db, 9);
        var tables = new SqlitePredictionTables(db.Registry);
        await tables.CreateAsync(new PredictionTableSpec("scores", "flowers", ["id"], "m", FeatureMapping.Parse(IrisFeatures)));
        await tables.RefreshAsync("scores");

        await db.Registry.SetAliasAsync("m", "production", 2);
        var e = await Assert.ThrowsAsync<ModelAsDataException>(() => tables.RefreshAsync("scores"));

        Assert.Equal(ErrorCode.FeatureMismatch, e.Code);
        Assert.Equal(
            "m@2 decodes into columns (variable) that differ from mad_out_scores's (label, probability_0, probability_1, probability_2): create a new prediction table for it.",
            e.Message);
        Assert.Equal([1L], db.Rows("SELECT DISTINCT model_version FROM mad_out_scores").Select(r => r["model_version"]));
        Assert.Equal(9L, db.Scalar("SELECT count(*) FROM mad_out_scores"));
        Assert.Equal(1, (await tables.GetAsync("scores")).RefreshedVersion);
    }

    [Fact]
    public async Task Names_that_need_quoting_work()
    {
        await using var db = await TempDatabase.CreateAsync();
        await db.PushAsync("iris", "skl2onnx_rf_iris.onnx");
        db.Execute("""CREATE TABLE "my table" ("row id" INTEGER PRIMARY KEY, "select" REAL, "from" REAL, "where" REAL, "we""ird" REAL, "group" TEXT)""");
        db.Execute("""INSERT INTO "my table" VALUES (1, 5.1, 3.5, 1.4, 0.2, 'a'), (2, 7.0, 3.2, 4.7, 1.4, 'b'), (3, 6.3, 3.3, 6.0, 2.5, 'c')""");
        var tables = new SqlitePredictionTables(db.Registry);
        var mapping = FeatureMapping.Parse("""{"float_input": ["select", "from", "where", "we\"ird"]}""");

        var table = await tables.CreateAsync(new PredictionTableSpec("odd_scores", "my table", ["row id"], "iris", mapping));
        var result = await tables.RefreshAsync("odd_scores");

        Assert.Equal(["row id"], table.Key);
        Assert.Equal((3L, 0L), (result.Rows, result.Failed));
        Assert.Equal([0L, 1L, 2L], db.Rows("""SELECT label FROM mad_out_odd_scores p JOIN "my table" t USING ("row id") ORDER BY "row id" """).Select(r => r["label"]));
    }

    [Fact]
    public async Task Injection_through_table_key_column_or_feature_names_is_refused_and_changes_nothing()
    {
        await using var db = await IrisAndFlowersAsync(rows: 3);
        var tables = new SqlitePredictionTables(db.Registry);
        var mapping = FeatureMapping.Parse(IrisFeatures);

        var source = await Assert.ThrowsAsync<ModelAsDataException>(() =>
            tables.CreateAsync(new PredictionTableSpec("s", "flowers; DROP TABLE flowers; --", ["id"], "iris", mapping)));
        Assert.Equal(ErrorCode.NotFound, source.Code);
        Assert.Contains("No table or view 'flowers; DROP TABLE flowers; --'", source.Message);

        var quoted = await Assert.ThrowsAsync<ModelAsDataException>(() =>
            tables.CreateAsync(new PredictionTableSpec("s", "flowers\"; DROP TABLE flowers; --", ["id"], "iris", mapping)));
        Assert.Equal(ErrorCode.NotFound, quoted.Code);

        var key = await Assert.ThrowsAsync<ModelAsDataException>(() =>
            tables.CreateAsync(new PredictionTableSpec("s", "flowers", ["id\") ; DROP TABLE flowers; --"], "iris", mapping)));
        Assert.Equal(ErrorCode.NotFound, key.Code);
        Assert.Contains("Table 'flowers' has no column 'id\") ; DROP TABLE flowers; --'; its columns: id, sepal_length", key.Message);

        var feature = await Assert.ThrowsAsync<ModelAsDataException>(() => tables.CreateAsync(new PredictionTableSpec("s", "flowers", ["id"], "iris",
            FeatureMapping.Parse("""{"float_input": ["sepal_length", "sepal_width", "petal_length", "petal_width\" FROM flowers; DROP TABLE flowers; --"]}"""))));
        Assert.Equal(ErrorCode.InvalidArgument, feature.Code);

        var name = await Assert.ThrowsAsync<ModelAsDataException>(() =>
            tables.CreateAsync(new PredictionTableSpec("s; DROP TABLE flowers", "flowers", ["id"], "iris", mapping)));
        Assert.Equal(ErrorCode.InvalidName, name.Code);

        var model = await Assert.ThrowsAsync<ModelAsDataException>(() =>
            tables.CreateAsync(new PredictionTableSpec("s", "flowers", ["id"], "iris'; DROP TABLE flowers; --", mapping)));
        Assert.Equal(ErrorCode.InvalidName, model.Code);

        Assert.Equal(3L, db.Scalar("SELECT count(*) FROM flowers"));
        Assert.Empty(await tables.ListAsync());
        Assert.Equal(0L, db.Scalar("SELECT count(*) FROM sqlite_master WHERE name LIKE 'mad\\_out\\_%' ESCAPE '\\'"));
    }

    [Fact]
    public async Task A_key_columns_declared_type_cannot_inject_sql_into_the_output_table()
    {
        await using var db = await TempDatabase.CreateAsync();
        await db.PushAsync("iris", "skl2onnx_rf_iris.onnx");
        db.Execute("CREATE TABLE victims (id INTEGER)");
        // SQLite keeps a quoted type name verbatim, and pragma_table_info returns it unquoted.
        db.Execute("CREATE TABLE src (id 'INTEGER); DROP TABLE victims; --' PRIMARY KEY, sepal_length REAL, sepal_width REAL, petal_length REAL, petal_width REAL)");
        db.Execute("INSERT INTO src VALUES (1, 5.1, 3.5, 1.4, 0.2)");
        var tables = new SqlitePredictionTables(db.Registry);

        await tables.CreateAsync(new PredictionTableSpec("src_scores", "src", ["id"], "iris", FeatureMapping.Parse(IrisFeatures)));
        await tables.RefreshAsync("src_scores");

        Assert.Equal(1L, db.Scalar("SELECT count(*) FROM sqlite_master WHERE name = 'victims'"));
        Assert.Equal(0L, db.Scalar("SELECT label FROM mad_out_src_scores WHERE id = 1"));
        Assert.Equal(9L, db.Scalar("SELECT count(*) FROM pragma_table_info('mad_out_src_scores')"));
    }

    [Fact]
    public async Task Creating_the_same_prediction_table_twice_is_a_conflict()
    {
        await using var db = await IrisAndFlowersAsync(rows: 3);
        var tables = new SqlitePredictionTables(db.Registry);
        var spec = new PredictionTableSpec("flower_scores", "flowers", ["id"], "iris", FeatureMapping.Parse(IrisFeatures));
        await tables.CreateAsync(spec);
        await tables.RefreshAsync("flower_scores");

        var e = await Assert.ThrowsAsync<ModelAsDataException>(() => tables.CreateAsync(spec));
        Assert.Equal(ErrorCode.Conflict, e.Code);
        Assert.Equal("Prediction table 'flower_scores' already exists; refresh it with: mad tables refresh flower_scores", e.Message);
        Assert.Equal(3L, db.Scalar("SELECT count(*) FROM mad_out_flower_scores"));

        // An unrelated table that has the output's name is not overwritten either.
        db.Execute("CREATE TABLE mad_out_taken (x INTEGER)");
        var taken = await Assert.ThrowsAsync<ModelAsDataException>(() => tables.CreateAsync(spec with { Name = "taken" }));
        Assert.Equal(ErrorCode.Conflict, taken.Code);
    }

    [Fact]
    public async Task Unknown_prediction_table_names_the_ones_that_exist()
    {
        await using var db = await IrisAndFlowersAsync(rows: 3);
        var tables = new SqlitePredictionTables(db.Registry);
        var none = await Assert.ThrowsAsync<ModelAsDataException>(() => tables.RefreshAsync("flower_scores"));
        Assert.Equal(ErrorCode.NotFound, none.Code);
        Assert.Contains("No prediction table 'flower_scores' (there are none)", none.Message);

        await tables.CreateAsync(new PredictionTableSpec("flower_scores", "flowers", ["id"], "iris", FeatureMapping.Parse(IrisFeatures)));
        var some = await Assert.ThrowsAsync<ModelAsDataException>(() => tables.GetAsync("flowers_scores"));
        Assert.Contains("(tables: flower_scores)", some.Message);
    }

    [Fact]
    public async Task Fixed_batch_model_is_refreshed_row_by_row()
    {
        await using var db = await TempDatabase.CreateAsync();
        await db.PushAsync("gbr", "skl2onnx_2018_gbr_batch1.onnx");
        db.Execute("CREATE TABLE points (k TEXT PRIMARY KEY, x1 REAL, x2 REAL)");
        db.Execute("INSERT INTO points VALUES ('a', 0, 1), ('b', 1, 1), ('c', NULL, 1), ('d', 2, 0), ('e', 0.5, 0.5)");
        var tables = new SqlitePredictionTables(db.Registry);
        var table = await tables.CreateAsync(new PredictionTableSpec("point_scores", "points", ["k"], "gbr", FeatureMapping.Parse("""{"input": ["x1", "x2"]}""")));
        Assert.Equal(["variable"], table.Columns.Select(c => c.Name));

        var result = await tables.RefreshAsync("point_scores");

        Assert.Equal((5L, 1L), (result.Rows, result.Failed));
        var rows = db.Rows("SELECT k, variable, error FROM mad_out_point_scores ORDER BY k");
        double?[] expected = [61.120003, 31.310001, null, 47.57, 61.120003];
        for (var i = 0; i < expected.Length; i++)
        {
            if (expected[i] is { } value)
            {
                Assert.Equal(value, (double)rows[i]["variable"]!, 1e-4);
                Assert.Null(rows[i]["error"]);
            }
        }

        Assert.Null(rows[2]["variable"]);
        Assert.Equal("column x1: null cannot feed input 'input'[0] (float)", rows[2]["error"]);
    }

    [Fact]
    public async Task Composite_text_key_is_kept_in_the_output_table()
    {
        await using var db = await TempDatabase.CreateAsync();
        await db.PushAsync("gbc", "skl2onnx_2018_gbc_strlabels_batch1.onnx");
        db.Execute("CREATE TABLE obs (region TEXT, n INTEGER, a REAL, b REAL, PRIMARY KEY (region, n))");
        db.Execute("INSERT INTO obs VALUES ('north', 1, 0, 1), ('north', 2, 1, 1), ('south', 1, 2, 0)");
        var tables = new SqlitePredictionTables(db.Registry);
        var table = await tables.CreateAsync(new PredictionTableSpec("obs_scores", "obs", ["region", "n"], "gbc", FeatureMapping.Parse("""{"input": ["a", "b"]}""")));
        Assert.Equal(["label", "probabilities_a", "probabilities_b"], table.Columns.Select(c => c.Name));

        await tables.RefreshAsync("obs_scores");

        var rows = db.Rows("SELECT region, n, label, probabilities_b FROM mad_out_obs_scores ORDER BY region, n");
        Assert.Equal(["north/1/A", "north/2/B", "south/1/A"], rows.Select(r => $"{r["region"]}/{r["n"]}/{r["label"]}"));
        Assert.Equal(0.5176473, (double)rows[1]["probabilities_b"]!, 1e-6);
        Assert.Equal(["region", "n"], db.Rows("SELECT name FROM pragma_table_info('mad_out_obs_scores') WHERE pk > 0 ORDER BY pk").Select(r => r["name"]));
    }

    [Fact]
    public async Task Decoded_columns_that_clash_with_a_key_column_are_renamed()
    {
        await using var db = await TempDatabase.CreateAsync();
        await db.PushAsync("iris", "skl2onnx_rf_iris.onnx");
        db.Execute("CREATE TABLE labelled (label TEXT PRIMARY KEY, a REAL, b REAL, c REAL, d REAL)");
        db.Execute("INSERT INTO labelled VALUES ('x', 5.1, 3.5, 1.4, 0.2), ('y', 6.3, 3.3, 6.0, 2.5)");
        var tables = new SqlitePredictionTables(db.Registry);
        var table = await tables.CreateAsync(new PredictionTableSpec("labelled_scores", "labelled", ["label"], "iris", FeatureMapping.Parse("""{"float_input": ["a", "b", "c", "d"]}""")));
        Assert.Equal(["predicted_label", "probability_0", "probability_1", "probability_2"], table.Columns.Select(c => c.Name));

        await tables.RefreshAsync("labelled_scores");

        Assert.Equal(["x:0", "y:2"], db.Rows("SELECT label, predicted_label FROM mad_out_labelled_scores ORDER BY label").Select(r => $"{r["label"]}:{r["predicted_label"]}"));
    }

    /// <summary>flowers(id, four features, expected): the MANIFEST rows in turn, with the label the forest gives each.</summary>
    /// <summary>A fresh registry file with the iris random forest pushed as iris@1 and a flowers table of that many rows.</summary>
    private static async Task<TempDatabase> IrisAndFlowersAsync(int rows)
    {
        var db = await TempDatabase.CreateAsync();
        await db.PushAsync("iris", "skl2onnx_rf_iris.onnx");
        CreateFlowers(db, rows);
        return db;
    }

    private static void CreateFlowers(TempDatabase db, int rows)
    {
        db.Execute("CREATE TABLE flowers (id INTEGER PRIMARY KEY, sepal_length REAL, sepal_width REAL, petal_length REAL, petal_width REAL, expected INTEGER)");
        using var transaction = db.Connection.BeginTransaction();
        using var insert = db.Connection.CreateCommand();
        insert.Transaction = transaction;
        insert.CommandText = "INSERT INTO flowers VALUES ($id, $a, $b, $c, $d, $e)";
        var parameters = new[] { "$id", "$a", "$b", "$c", "$d", "$e" }.Select(n => insert.Parameters.Add(new Microsoft.Data.Sqlite.SqliteParameter(n, null))).ToArray();
        for (var id = 1; id <= rows; id++)
        {
            var (features, label) = s_iris[(id - 1) % s_iris.Length];
            parameters[0].Value = id;
            for (var f = 0; f < 4; f++)
            {
                parameters[f + 1].Value = features[f];
            }

            parameters[5].Value = label;
            insert.ExecuteNonQuery();
        }

        transaction.Commit();
    }

    /// <summary>Reports on the caller's thread, unlike <see cref="Progress{T}"/>, so the list is complete when refresh returns.</summary>
    private sealed class SynchronousProgress(Action<RefreshProgress> report) : IProgress<RefreshProgress>
    {
        public void Report(RefreshProgress value) => report(value);
    }
}

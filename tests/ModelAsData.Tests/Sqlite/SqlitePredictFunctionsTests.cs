using System.Text.Json;
using Microsoft.Data.Sqlite;
using ModelAsData.Sqlite;
using ModelAsData.Tests.Onnx;

namespace ModelAsData.Tests.Sqlite;

/// <summary><c>predict()</c> and <c>predict_proba()</c> as users get them: one Register call on their own connection.</summary>
public sealed class SqlitePredictFunctionsTests
{
    private const string Iris = "SELECT predict('iris', 5.1, 3.5, 1.4, 0.2), predict('iris', 7.0, 3.2, 4.7, 1.4), predict('iris', 6.3, 3.3, 6.0, 2.5)";

    [Fact]
    public async Task Predict_returns_the_random_forests_labels_on_a_connection_opened_by_the_library()
    {
        await using var db = await TempDatabase.CreateAsync();
        await db.PushAsync("iris", "skl2onnx_rf_iris.onnx");
        var connection = await db.OpenConnectionAsync();
        SqlitePredictFunctions.Register(connection);

        Assert.Equal([0L, 1L, 2L], Row(connection, Iris));
    }

    [Fact]
    public async Task Predict_works_on_the_users_own_plain_connection_after_migration()
    {
        var folder = TempDatabase.NewFolder();
        try
        {
            var path = Path.Combine(folder, "app.db");
            await using (var registry = await SqliteModelRegistry.OpenAsync(path))
            {
                await registry.PushAsync("iris", TestModels.ExternalBytes("skl2onnx_rf_iris.onnx"), []);
            }

            await using var connection = new SqliteConnection($"Data Source={path};Pooling=False");
            await connection.OpenAsync();
            SqlitePredictFunctions.Register(connection);
            TempDatabase.Execute(connection, "CREATE TABLE flowers (id INTEGER PRIMARY KEY, sl REAL, sw REAL, pl REAL, pw REAL)");
            TempDatabase.Execute(connection, "INSERT INTO flowers VALUES (1, 5.1, 3.5, 1.4, 0.2), (2, 7.0, 3.2, 4.7, 1.4), (3, 6.3, 3.3, 6.0, 2.5)");

            Assert.Equal([0L, 1L, 2L], Column(connection, "SELECT predict('iris', sl, sw, pl, pw) FROM flowers ORDER BY id"));
            Assert.Equal([1L, 1L, 1L], Column(connection, "SELECT predict_version('iris') FROM flowers"));
        }
        finally
        {
            TempDatabase.DeleteFolder(folder);
        }
    }

    [Fact]
    public async Task Predict_works_on_an_in_memory_connection_whose_registry_the_user_migrated()
    {
        await using var connection = new SqliteConnection("Data Source=:memory:");
        await connection.OpenAsync();
        await using var registry = new SqliteModelRegistry(connection);
        await registry.MigrateAsync();
        await registry.PushAsync("gbr", TestModels.ExternalBytes("skl2onnx_2018_gbr_batch1.onnx"), []);
        SqlitePredictFunctions.Register(connection);

        var values = Row(connection, "SELECT predict('gbr', 0, 1), predict('gbr@1', 1, 1), predict('gbr', 2, 0)");
        Assert.Equal(61.120003, (double)values[0]!, 1e-4);
        Assert.Equal(31.310001, (double)values[1]!, 1e-4);
        Assert.Equal(47.57, (double)values[2]!, 1e-4);
    }

    [Fact]
    public async Task Predict_works_inside_the_users_transaction()
    {
        await using var db = await TempDatabase.CreateAsync();
        await db.PushAsync("iris", "skl2onnx_rf_iris.onnx");
        var connection = await db.OpenConnectionAsync();
        SqlitePredictFunctions.Register(connection);
        using var transaction = connection.BeginTransaction();
        using var command = connection.CreateCommand();
        command.Transaction = transaction;
        command.CommandText = "CREATE TABLE scores (id INTEGER PRIMARY KEY, label INTEGER); INSERT INTO scores SELECT 1, predict('iris', 6.3, 3.3, 6.0, 2.5)";
        command.ExecuteNonQuery();
        command.CommandText = "SELECT predict('iris@1', 5.1, 3.5, 1.4, 0.2) + label FROM scores";
        Assert.Equal(2L, command.ExecuteScalar());
        transaction.Commit();
        Assert.Equal(2L, TempDatabase.Scalar(connection, "SELECT label FROM scores"));
    }

    [Fact]
    public async Task Predict_returns_the_xgboost_regression_value()
    {
        await using var db = await TempDatabase.CreateAsync();
        await db.PushAsync("boost", "onnxmltools_xgboost_regressor.onnx");
        SqlitePredictFunctions.Register(db.Connection);
        var values = Row(db.Connection, "SELECT predict('boost', 5.1, 3.5, 1.4, 0.2), predict('boost', 7.0, 3.2, 4.7, 1.4), predict('boost', 0, 0, 0, 0)");
        Assert.Equal(-6.7949295E-06, (double)values[0]!, 1e-7);
        Assert.Equal(0.9998387, (double)values[1]!, 1e-6);
        Assert.Equal(0.0041531622, (double)values[2]!, 1e-7);
    }

    [Fact]
    public async Task Predict_returns_the_string_label_of_the_fixed_batch_classifier()
    {
        await using var db = await TempDatabase.CreateAsync();
        await db.PushAsync("gbc", "skl2onnx_2018_gbc_strlabels_batch1.onnx");
        SqlitePredictFunctions.Register(db.Connection);
        Assert.Equal(["A", "B", "A", "A"], Row(db.Connection, "SELECT predict('gbc', 0, 1), predict('gbc', 1, 1), predict('gbc', 2, 0), predict('gbc', 0.5, 0.5)"));

        var b = Row(db.Connection, "SELECT predict_proba('gbc', 'B', 0, 1), predict_proba('gbc', 'B', 1, 1), predict_proba('gbc', 'A', 1, 1)");
        Assert.Equal(0.24536586, (double)b[0]!, 1e-6);
        Assert.Equal(0.5176473, (double)b[1]!, 1e-6);
        Assert.Equal(0.48235267, (double)b[2]!, 1e-6);
    }

    [Theory]
    [InlineData(0, 2L)]
    [InlineData(1, 0L)]
    [InlineData(2, 9L)]
    public async Task Predict_gives_the_argmax_of_mnist_for_a_json_array_of_784_pixels(int set, long digit)
    {
        await using var db = await TempDatabase.CreateAsync();
        await db.PushAsync("mnist", "mnist-8/model.onnx");
        SqlitePredictFunctions.Register(db.Connection);
        var pixels = TensorFile.ReadFloats(TestModels.External($"mnist-8/test_data_set_{set}/input_0.pb"));
        Assert.Equal(784, pixels.Length);

        using var command = db.Connection.CreateCommand();
        command.CommandText = "SELECT predict('mnist', $pixels)";
        command.Parameters.AddWithValue("$pixels", JsonSerializer.Serialize(pixels));
        Assert.Equal(digit, command.ExecuteScalar());
    }

    [Fact]
    public async Task Predict_proba_finds_a_class_by_its_label_as_text_or_number()
    {
        await using var db = await TempDatabase.CreateAsync();
        await db.PushAsync("iris", "skl2onnx_rf_iris.onnx");
        SqlitePredictFunctions.Register(db.Connection);
        var values = Row(db.Connection,
            "SELECT predict_proba('iris', '1', 7.0, 3.2, 4.7, 1.4), predict_proba('iris', 2, 7.0, 3.2, 4.7, 1.4), predict_proba('iris', '0', 5.1, 3.5, 1.4, 0.2)");
        Assert.Equal(0.98999935, (double)values[0]!, 1e-6);
        Assert.Equal(0.01, (double)values[1]!, 1e-6);
        Assert.Equal(0.99999934, (double)values[2]!, 1e-6);

        var e = Assert.Throws<SqliteException>(() => Row(db.Connection, "SELECT predict_proba('iris', 'virginica', 7.0, 3.2, 4.7, 1.4)"));
        Assert.Contains("Model 'iris' has no class 'virginica': its classes are '0', '1', '2'.", e.Message);
    }

    [Fact]
    public async Task References_by_version_and_alias_score_with_that_version()
    {
        await using var db = await TempDatabase.CreateAsync();
        await db.PushAsync("iris", "skl2onnx_rf_iris.onnx");
        await db.PushAsync("iris", "onnxmltools_xgboost_regressor.onnx");
        await db.Registry.SetAliasAsync("iris", "production", 1);
        SqlitePredictFunctions.Register(db.Connection);

        var values = Row(db.Connection, "SELECT predict('iris@2', 7.0, 3.2, 4.7, 1.4), predict('iris@production', 7.0, 3.2, 4.7, 1.4), predict('iris', 7.0, 3.2, 4.7, 1.4), predict_version('iris@2'), predict_version('iris')");
        Assert.Equal(0.9998387, (double)values[0]!, 1e-6);
        Assert.Equal([1L, 1L, 2L, 1L], values.Skip(1));
    }

    [Fact]
    public async Task Alias_move_on_the_same_connection_is_seen_by_the_next_query()
    {
        await using var db = await TempDatabase.CreateAsync();
        await db.PushAsync("m", "skl2onnx_rf_iris.onnx");
        await db.PushAsync("m", "onnxmltools_xgboost_regressor.onnx");
        await db.Registry.SetAliasAsync("m", "production", 1);
        SqlitePredictFunctions.Register(db.Connection);
        const string Query = "SELECT predict('m', 7.0, 3.2, 4.7, 1.4), predict_version('m@production')";
        Assert.Equal([1L, 1L], Row(db.Connection, Query));

        await db.Registry.SetAliasAsync("m", "production", 2);
        var after = Row(db.Connection, Query);
        Assert.Equal(0.9998387, (double)after[0]!, 1e-6);
        Assert.Equal(2L, after[1]);

        await db.Registry.RollbackAliasAsync("m", "production");
        Assert.Equal([1L, 1L], Row(db.Connection, Query));
    }

    [Fact]
    public async Task Alias_move_by_another_connection_is_seen_after_the_recheck_interval()
    {
        await using var db = await TempDatabase.CreateAsync();
        await db.PushAsync("m", "skl2onnx_rf_iris.onnx");
        await db.PushAsync("m", "onnxmltools_xgboost_regressor.onnx");
        await db.Registry.SetAliasAsync("m", "production", 1);
        var reader = await db.OpenConnectionAsync();
        SqlitePredictFunctions.Register(reader);
        const string Query = "SELECT predict_version('m'), predict('m', 7.0, 3.2, 4.7, 1.4)";
        Assert.Equal([1L, 1L], Row(reader, Query));

        var writer = await db.OpenAnotherAsync();
        await writer.SetAliasAsync("m", "production", 2);
        await Task.Delay(TimeSpan.FromMilliseconds(150));
        var after = Row(reader, Query);
        Assert.Equal(2L, after[0]);
        Assert.Equal(0.9998387, (double)after[1]!, 1e-6);
    }

    [Fact]
    public async Task Null_feature_is_a_sql_error_naming_the_model_and_the_position()
    {
        await using var db = await TempDatabase.CreateAsync();
        await db.PushAsync("iris", "skl2onnx_rf_iris.onnx");
        SqlitePredictFunctions.Register(db.Connection);
        var e = Assert.Throws<SqliteException>(() => Row(db.Connection, "SELECT predict('iris', 5.1, 3.5, NULL, 0.2)"));
        Assert.Contains("Model 'iris', feature 3: null cannot feed input 'float_input'[2] (float).", e.Message);
    }

    [Fact]
    public async Task Text_feature_is_a_sql_error_naming_the_model_the_position_and_the_value()
    {
        await using var db = await TempDatabase.CreateAsync();
        await db.PushAsync("iris", "skl2onnx_rf_iris.onnx");
        SqlitePredictFunctions.Register(db.Connection);
        var e = Assert.Throws<SqliteException>(() => Row(db.Connection, "SELECT predict('iris@1', 5.1, 'wide', 1.4, 0.2)"));
        Assert.Contains("Model 'iris@1', feature 2: text 'wide' cannot feed input 'float_input' (float).", e.Message);

        // The connection and the model's scorer stay usable after the error.
        Assert.Equal([2L], Row(db.Connection, "SELECT predict('iris@1', 6.3, 3.3, 6.0, 2.5)"));
    }

    [Theory]
    [InlineData("5.1, 3.5, 1.4", 3)]
    [InlineData("5.1, 3.5, 1.4, 0.2, 9", 5)]
    [InlineData("", 0)]
    public async Task Wrong_feature_count_names_the_model_what_it_takes_and_what_was_given(string features, int given)
    {
        await using var db = await TempDatabase.CreateAsync();
        await db.PushAsync("iris", "skl2onnx_rf_iris.onnx");
        SqlitePredictFunctions.Register(db.Connection);
        var sql = features.Length == 0 ? "SELECT predict('iris')" : $"SELECT predict('iris', {features})";
        var e = Assert.Throws<SqliteException>(() => Row(db.Connection, sql));
        Assert.Contains($"Model 'iris' takes 4 feature(s) (float_input float[-1,4]); predict() was given {given}.", e.Message);
    }

    [Fact]
    public async Task Json_array_of_the_wrong_length_or_not_numbers_is_refused()
    {
        await using var db = await TempDatabase.CreateAsync();
        await db.PushAsync("iris", "skl2onnx_rf_iris.onnx");
        SqlitePredictFunctions.Register(db.Connection);
        Assert.Equal([0L], Row(db.Connection, "SELECT predict('iris', '[5.1, 3.5, 1.4, 0.2]')"));
        var length = Assert.Throws<SqliteException>(() => Row(db.Connection, "SELECT predict('iris', '[5.1, 3.5]')"));
        Assert.Contains("Model 'iris' takes 4 features; the JSON array holds 2.", length.Message);
        var text = Assert.Throws<SqliteException>(() => Row(db.Connection, "SELECT predict('iris', '[5.1, \"x\", 1, 2]')"));
        Assert.Contains("Model 'iris': the feature array is not a JSON array of numbers", text.Message);
    }

    [Fact]
    public async Task Unknown_model_or_alias_is_a_sql_error_that_names_what_exists()
    {
        await using var db = await TempDatabase.CreateAsync();
        await db.PushAsync("iris", "skl2onnx_rf_iris.onnx");
        SqlitePredictFunctions.Register(db.Connection);
        var model = Assert.Throws<SqliteException>(() => Row(db.Connection, "SELECT predict('churn', 1, 2, 3, 4)"));
        Assert.Contains("Model 'churn' does not exist; the models are 'iris'.", model.Message);
        var alias = Assert.Throws<SqliteException>(() => Row(db.Connection, "SELECT predict('iris@staging', 1, 2, 3, 4)"));
        Assert.Contains("Model 'iris' has no alias 'staging'", alias.Message);
        var version = Assert.Throws<SqliteException>(() => Row(db.Connection, "SELECT predict('iris@4', 1, 2, 3, 4)"));
        Assert.Contains("Model 'iris' has no version 4; its versions are 1 (ready).", version.Message);
        var missing = Assert.Throws<SqliteException>(() => Row(db.Connection, "SELECT predict(NULL, 1, 2, 3, 4)"));
        Assert.Contains("predict(model, feature, ...) takes a model reference", missing.Message);
    }

    [Theory]
    [InlineData("iris'; DROP TABLE flowers; --")]
    [InlineData("iris; DROP TABLE flowers")]
    [InlineData("iris@production; DELETE FROM mad_aliases")]
    [InlineData("x\" OR 1=1 --")]
    [InlineData("iris' UNION SELECT onnx FROM mad_model_versions --")]
    public async Task Injection_in_the_model_reference_is_refused_as_an_invalid_name(string reference)
    {
        await using var db = await TempDatabase.CreateAsync();
        await db.PushAsync("iris", "skl2onnx_rf_iris.onnx");
        await db.Registry.SetAliasAsync("iris", "production", 1);
        SqlitePredictFunctions.Register(db.Connection);
        db.Execute("CREATE TABLE flowers (id INTEGER PRIMARY KEY)");

        using var command = db.Connection.CreateCommand();
        command.CommandText = "SELECT predict($ref, 5.1, 3.5, 1.4, 0.2)";
        command.Parameters.AddWithValue("$ref", reference);
        var e = Assert.Throws<SqliteException>(() => command.ExecuteScalar());
        Assert.Contains("Invalid ", e.Message);
        Assert.Contains("use lower-case letters, digits and '_'", e.Message);

        Assert.Equal(1L, db.Scalar("SELECT count(*) FROM sqlite_master WHERE name = 'flowers'"));
        Assert.Equal(1L, db.Scalar("SELECT count(*) FROM mad_aliases"));
    }

    [Fact]
    public async Task Predict_scores_every_row_of_a_table_with_the_same_results_as_a_batch()
    {
        await using var db = await TempDatabase.CreateAsync();
        await db.PushAsync("titanic", "skl2onnx_pipeline_titanic_nozipmap.onnx");
        SqlitePredictFunctions.Register(db.Connection);
        db.Execute("CREATE TABLE p (id INTEGER PRIMARY KEY, pclass INTEGER, sex TEXT, age REAL, fare REAL, embarked TEXT)");
        db.Execute("INSERT INTO p VALUES (1, 1, 'female', 29, 211.3375, 'S'), (2, 3, 'male', 22, 7.25, 'S'), (3, 4, 'unknown', 30, 13, 'Z')");
        Assert.Equal([1L, 0L, 1L], Column(db.Connection, "SELECT predict('titanic', pclass, sex, age, fare, embarked) FROM p ORDER BY id"));
        var survival = Column(db.Connection, "SELECT predict_proba('titanic', 1, pclass, sex, age, fare, embarked) FROM p ORDER BY id");
        Assert.Equal(0.88553804, (double)survival[0]!, 1e-6);
        Assert.Equal(0.5623933, (double)survival[2]!, 1e-6);
    }

    private static object?[] Row(SqliteConnection connection, string sql)
    {
        using var command = connection.CreateCommand();
        command.CommandText = sql;
        using var reader = command.ExecuteReader();
        Assert.True(reader.Read());
        return Enumerable.Range(0, reader.FieldCount).Select(i => reader.IsDBNull(i) ? null : reader.GetValue(i)).ToArray();
    }

    private static List<object?> Column(SqliteConnection connection, string sql)
    {
        using var command = connection.CreateCommand();
        command.CommandText = sql;
        using var reader = command.ExecuteReader();
        var values = new List<object?>();
        while (reader.Read())
        {
            values.Add(reader.IsDBNull(0) ? null : reader.GetValue(0));
        }

        return values;
    }

}

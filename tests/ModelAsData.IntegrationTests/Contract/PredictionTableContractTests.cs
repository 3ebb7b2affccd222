using System.Globalization;
using System.Text.Json.Nodes;

namespace ModelAsData.IntegrationTests.Contract;

/// <summary>
/// What every <see cref="IPredictionTables"/> must do, whatever the store: one subclass per store, as
/// <see cref="RegistryContractTests"/> does for the registry. Tests go through <see cref="IModelRegistry"/> and
/// <see cref="IPredictionTables"/> and read the output with SQL both stores accept; the one thing that differs is where
/// the output table lives (<see cref="OutputTableOf"/>). Names are unique per test, so a store may share one database
/// between tests.
/// </summary>
public abstract class PredictionTableContractTests : StoreContractTests
{
    /// <summary>The iris random forest's features in the source tables below.</summary>
    protected const string IrisFeatures = """{"float_input": ["sepal_length", "sepal_width", "petal_length", "petal_width"]}""";

    /// <summary>The MANIFEST's three iris rows, keyed 1..3, and the label the random forest gives each.</summary>
    private static readonly (double[] Features, long Label)[] s_iris =
    [
        ([5.1, 3.5, 1.4, 0.2], 0),
        ([7.0, 3.2, 4.7, 1.4], 1),
        ([6.3, 3.3, 6.0, 2.5], 2),
    ];

    private IPredictionTables? _tables;

    protected IPredictionTables Tables => _tables ?? throw new InvalidOperationException("InitializeAsync has not run.");

    private static byte[] RandomForest => TestModels.Bytes("skl2onnx_rf_iris.onnx");

    /// <summary>A migrated registry and its prediction tables for one test, ready to refresh (a store scored by sidecars starts one).</summary>
    protected abstract Task<(IModelRegistry Registry, IPredictionTables Tables)> OpenAsync();

    /// <summary>The table analysts join for prediction table <paramref name="name"/>, as SQL names it.</summary>
    protected abstract string OutputTableOf(string name);

    /// <summary>
    /// A column type that holds '3.5' and 'wide' as a user would store them. The stores differ here: PostgreSQL needs
    /// <c>text</c> and its refresh parses numeric text into a numeric input; SQLite's refresh refuses every text value
    /// for a numeric input (even '3.5'), so its column is <c>real</c>, where SQLite itself keeps numbers as numbers.
    /// </summary>
    protected abstract string NumbersAndAWordColumnType { get; }

    /// <summary>A column type that holds a row's small-integer tensor (an image), as a user of the store would keep it.</summary>
    protected abstract string TensorColumnType { get; }

    /// <summary>
    /// The SQL literal of a tensor in a <see cref="TensorColumnType"/> column: nested rows, or one flat row of the
    /// first values of each when <paramref name="flat"/>; a null element is SQL's NULL.
    /// </summary>
    protected abstract string TensorLiteral(int?[][] rows, bool flat = false);

    /// <summary>The output table's column names in order, as the store's catalog has them.</summary>
    protected abstract string ColumnsQuery(string name);

    /// <summary>Runs SQL on the store's database, as the owner of its tables.</summary>
    protected abstract Task ExecuteAsync(string sql);

    /// <summary>Runs a query on the store's database; columns map by position onto <typeparamref name="T"/>.</summary>
    protected abstract Task<IReadOnlyList<T>> QueryAsync<T>(string sql);

    protected sealed override async Task<IModelRegistry> OpenRegistryAsync()
    {
        (var registry, _tables) = await OpenAsync();
        return registry;
    }

    [Fact(Timeout = 90_000)]
    public async Task Create_binds_the_model_and_makes_an_empty_output_table_keyed_like_the_source()
    {
        var model = await ReadyModelAsync();
        var source = await CreateFlowersAsync(10);
        var name = Sql.UniqueName("scores");

        var created = await CreateAsync(name, source, model);

        Assert.Equal(name, created.Name);
        Assert.Equal(source, created.Source);
        Assert.Equal(["id"], created.Key);
        Assert.Equal(model, created.Model);
        Assert.Equal(JsonNode.Parse(IrisFeatures)!.ToJsonString(), created.Features.ToJsonString());
        Assert.Equal(["label", "probability_0", "probability_1", "probability_2"], created.Columns.Select(c => c.Name));
        Assert.Equal(OutputTableOf(name), created.OutputTable);
        Assert.Null(created.RefreshedAt);
        Assert.Null(created.RefreshedVersion);
        Assert.Equal(0, await ScalarAsync($"SELECT count(*) FROM {OutputTableOf(name)}"));
        Assert.Equal(
            ["id", "label", "probability_0", "probability_1", "probability_2", "model_version", "scored_at", "error", "arm"],
            await QueryAsync<string>(ColumnsQuery(name)));
        Assert.Equal(created, await Tables.GetAsync(name, Ct), PredictionTableComparer.Instance);
        Assert.Contains(await Tables.ListAsync(Ct), t => t.Name == name);
    }

    [Fact(Timeout = 90_000)]
    public async Task Create_refuses_a_name_that_exists_and_an_unknown_table_is_not_found()
    {
        var model = await ReadyModelAsync();
        var source = await CreateFlowersAsync(3);
        var name = Sql.UniqueName("scores");
        await CreateAsync(name, source, model);

        var twice = await Assert.ThrowsAsync<ModelAsDataException>(() => CreateAsync(name, source, model));
        var unknown = Sql.UniqueName("nosuch");
        var get = await Assert.ThrowsAsync<ModelAsDataException>(() => Tables.GetAsync(unknown, Ct));
        var refresh = await Assert.ThrowsAsync<ModelAsDataException>(() => Tables.RefreshAsync(unknown, cancellationToken: Ct));
        var noSource = await Assert.ThrowsAsync<ModelAsDataException>(() => CreateAsync(Sql.UniqueName("scores"), "no_such_table", model));

        Assert.Equal(ErrorCode.Conflict, twice.Code);
        Assert.Contains($"'{name}' already exists", twice.Message, StringComparison.Ordinal);
        Assert.Equal(ErrorCode.NotFound, get.Code);
        Assert.Contains($"No prediction table '{unknown}'", get.Message, StringComparison.Ordinal);
        Assert.Contains(name, get.Message, StringComparison.Ordinal);
        Assert.Equal(ErrorCode.NotFound, refresh.Code);
        Assert.Contains(unknown, refresh.Message, StringComparison.Ordinal);
        Assert.Equal(ErrorCode.NotFound, noSource.Code);
        Assert.Contains("No table or view 'no_such_table'", noSource.Message, StringComparison.Ordinal);
    }

    [Fact(Timeout = 90_000)]
    public async Task Refresh_scores_every_source_row_and_records_the_refresh()
    {
        var model = await ReadyModelAsync();
        var source = await CreateFlowersAsync(40);
        var name = Sql.UniqueName("scores");
        await CreateAsync(name, source, model);
        var before = DateTimeOffset.UtcNow.AddSeconds(-5);

        var result = await Tables.RefreshAsync(name, cancellationToken: Ct);

        Assert.Equal(name, result.Name);
        Assert.Equal((model, 1), (result.Version.Model, result.Version.Version));
        Assert.Equal((40L, 0L), (result.Rows, result.Failed));
        Assert.Equal(40, await ScalarAsync($"SELECT count(*) FROM {OutputTableOf(name)} WHERE model_version = 1 AND error IS NULL AND label BETWEEN 0 AND 2"));
        Assert.Equal(
            s_iris.Select(r => r.Label),
            await QueryAsync<long>($"SELECT label FROM {OutputTableOf(name)} WHERE id <= 3 ORDER BY id"));
        var table = await Tables.GetAsync(name, Ct);
        Assert.Equal((1, 40L, 0L), (table.RefreshedVersion, table.RowsScored, table.RowsFailed));
        Assert.InRange(table.RefreshedAt!.Value, before, DateTimeOffset.UtcNow.AddSeconds(5));
    }

    [Fact(Timeout = 90_000)]
    public async Task A_row_whose_feature_is_null_or_not_a_number_gets_its_error_and_the_others_are_scored()
    {
        var model = await ReadyModelAsync();
        var source = Sql.UniqueName("messy");
        // A column of numbers holding one word: the store must refuse 'wide' for that row alone.
        await ExecuteAsync($"CREATE TABLE {source} (id integer PRIMARY KEY, sepal_length real, sepal_width {NumbersAndAWordColumnType}, petal_length real, petal_width real)");
        await ExecuteAsync($"INSERT INTO {source} VALUES {string.Join(", ", Enumerable.Range(1, 20).Select(i => $"({i}, 5.1, '3.5', 1.4, 0.2)"))}");
        await ExecuteAsync($"UPDATE {source} SET sepal_width = 'wide' WHERE id = 7");
        await ExecuteAsync($"UPDATE {source} SET petal_length = NULL WHERE id = 12");
        var name = Sql.UniqueName("scores");
        await CreateAsync(name, source, model);

        var result = await Tables.RefreshAsync(name, cancellationToken: Ct);

        Assert.Equal((20L, 2L), (result.Rows, result.Failed));
        var failed = await QueryAsync<(long Id, long? Label, long Version, string Error)>(
            $"SELECT id, label, CAST(model_version AS bigint), error FROM {OutputTableOf(name)} WHERE error IS NOT NULL ORDER BY id");
        Assert.Equal([7L, 12L], failed.Select(r => r.Id));
        Assert.All(failed, r => Assert.Null(r.Label));
        Assert.All(failed, r => Assert.Equal(1, r.Version));
        Assert.Equal("column sepal_width: text 'wide' cannot feed input 'float_input' (float)", failed[0].Error);
        Assert.Equal("column petal_length: null cannot feed input 'float_input'[2] (float)", failed[1].Error);
        Assert.Equal(18, await ScalarAsync($"SELECT count(*) FROM {OutputTableOf(name)} WHERE error IS NULL AND label = 0"));
        var table = await Tables.GetAsync(name, Ct);
        Assert.Equal((20L, 2L), (table.RowsScored, table.RowsFailed));
    }

    [Fact(Timeout = 90_000)]
    public async Task A_tensor_row_that_does_not_fit_gets_its_own_error_in_the_same_words_on_every_store()
    {
        var model = Sql.UniqueName("cnn");
        await PushReadyAsync(model, File.ReadAllBytes(Path.Combine(AppContext.BaseDirectory, "TestData", "cnn_uint8.onnx")));
        var source = Sql.UniqueName("pixels");
        int?[][] Image(int rows, int columns, int value) => [.. Enumerable.Range(0, rows).Select(_ => Enumerable.Repeat<int?>(value, columns).ToArray())];
        var outOfRange = Image(28, 28, 5);
        outOfRange[4][4] = 300;
        var withNull = Image(28, 28, 5);
        withNull[0][1] = null;
        var images = new (int Id, string Literal)[]
        {
            (1, TensorLiteral(Image(28, 28, 1))),
            (2, TensorLiteral([.. Enumerable.Repeat<int?>(1, 783).Select(v => new[] { v })], flat: true)),
            (3, TensorLiteral(Image(28, 27, 1))),
            (4, TensorLiteral(outOfRange)),
            (5, TensorLiteral(withNull)),
            (6, "NULL"),
            (7, TensorLiteral(Image(28, 28, 200))),
        };
        await ExecuteAsync($"CREATE TABLE {source} (id integer PRIMARY KEY, image {TensorColumnType})");
        await ExecuteAsync($"INSERT INTO {source} VALUES {string.Join(", ", images.Select(i => $"({i.Id}, {i.Literal})"))}");
        var name = Sql.UniqueName("checked");
        await Tables.CreateAsync(new PredictionTableSpec(name, source, ["id"], model, null), Ct);

        var result = await Tables.RefreshAsync(name, cancellationToken: Ct);

        Assert.Equal((7L, 5L), (result.Rows, result.Failed));
        var rows = await QueryAsync<(long Id, string? Error, double? Logit)>($"SELECT id, error, logits_0 FROM {OutputTableOf(name)} ORDER BY id");
        Assert.Equal([
            (1L, (string?)null),
            (2L, "column image: input 'image' takes [1, 28, 28] (784 value(s)) per row; the array has 783 value(s)"),
            (3L, "column image: input 'image' takes [1, 28, 28] (784 value(s)) per row; the array has dimensions [28, 27]"),
            (4L, "column image: element 116: 300 does not fit input 'image' (uint8)"),
            (5L, "column image: the array holds a NULL at element 1, which cannot feed input 'image'"),
            (6L, "column image: null cannot feed input 'image' [1, 28, 28] (784 value(s))"),
            (7L, null),
        ], rows.Select(r => (r.Id, r.Error)));
        Assert.All(rows, r => Assert.Equal(r.Error is null, r.Logit is not null));
    }

    [Fact(Timeout = 90_000)]
    public async Task Moving_the_alias_and_refreshing_rescores_with_the_version_it_points_at()
    {
        var model = Sql.UniqueName("iris");
        await PushReadyAsync(model, RandomForest);
        await PushReadyAsync(model, RandomForest, new JsonObject { ["note"] = "retrained" });
        await Registry.SetAliasAsync(model, ModelReference.DefaultAlias, 1, cancellationToken: Ct);
        var source = await CreateFlowersAsync(25);
        var name = Sql.UniqueName("scores");
        await CreateAsync(name, source, $"{model}@production");

        var first = await Tables.RefreshAsync(name, cancellationToken: Ct);
        var versionsAfterFirst = await DistinctVersionsAsync(name);
        await Registry.SetAliasAsync(model, ModelReference.DefaultAlias, 2, "retrained", Ct);
        var second = await Tables.RefreshAsync(name, cancellationToken: Ct);
        var versionsAfterSecond = await DistinctVersionsAsync(name);
        var recordedAfterSecond = (await Tables.GetAsync(name, Ct)).RefreshedVersion;
        await Registry.RollbackAliasAsync(model, ModelReference.DefaultAlias, Ct);
        var third = await Tables.RefreshAsync(name, cancellationToken: Ct);

        Assert.Equal([1, 2, 1], new[] { first, second, third }.Select(r => r.Version.Version));
        Assert.All(new[] { first, second, third }, r => Assert.Equal(25L, r.Rows));
        Assert.Equal([1L], versionsAfterFirst);
        Assert.Equal([2L], versionsAfterSecond);
        Assert.Equal(2, recordedAfterSecond);
        Assert.Equal([1L], await DistinctVersionsAsync(name));
        Assert.Equal(1, (await Tables.GetAsync(name, Ct)).RefreshedVersion);
    }

    [Fact(Timeout = 90_000)]
    public async Task A_join_of_the_output_with_the_source_gives_each_row_its_prediction_and_model_version()
    {
        var model = await ReadyModelAsync();
        var source = await CreateFlowersAsync(30);
        var name = Sql.UniqueName("scores");
        await CreateAsync(name, source, model);
        await Tables.RefreshAsync(name, cancellationToken: Ct);

        var joined = await QueryAsync<(long Id, double SepalLength, long Label, long Version)>($"""
            SELECT s.id, CAST(s.sepal_length AS double precision), p.label, CAST(p.model_version AS bigint)
            FROM {source} s JOIN {OutputTableOf(name)} p USING (id) ORDER BY s.id
            """);

        Assert.Equal(Enumerable.Range(1, 30).Select(i => (long)i), joined.Select(r => r.Id));
        Assert.Equal(s_iris.Select(r => r.Label), joined.Take(3).Select(r => r.Label));
        Assert.Equal(s_iris[1].Features[0], joined[1].SepalLength, 1e-6);
        Assert.All(joined, r => Assert.Equal(1, r.Version));
        Assert.All(joined, r => Assert.InRange(r.Label, 0, 2));
    }

    [Fact(Timeout = 90_000)]
    public async Task After_source_rows_are_deleted_and_added_a_refresh_has_exactly_the_rows_of_the_source()
    {
        var model = await ReadyModelAsync();
        var source = await CreateFlowersAsync(30);
        var name = Sql.UniqueName("scores");
        await CreateAsync(name, source, model);
        await Tables.RefreshAsync(name, cancellationToken: Ct);

        await ExecuteAsync($"DELETE FROM {source} WHERE id % 3 = 0");
        await ExecuteAsync($"INSERT INTO {source} VALUES (100, 6.3, 3.3, 6.0, 2.5)");
        var result = await Tables.RefreshAsync(name, cancellationToken: Ct);

        Assert.Equal(21L, result.Rows);
        Assert.Equal(21, await ScalarAsync($"SELECT count(*) FROM {OutputTableOf(name)}"));
        Assert.Equal(0, await ScalarAsync($"SELECT count(*) FROM {OutputTableOf(name)} p LEFT JOIN {source} s USING (id) WHERE s.id IS NULL"));
        Assert.Equal(0, await ScalarAsync($"SELECT count(*) FROM {source} s LEFT JOIN {OutputTableOf(name)} p USING (id) WHERE p.id IS NULL"));
        Assert.Equal([2L], await QueryAsync<long>($"SELECT label FROM {OutputTableOf(name)} WHERE id = 100"));
        Assert.Equal(21L, (await Tables.GetAsync(name, Ct)).RowsScored);
    }

    [Fact(Timeout = 90_000)]
    public async Task A_table_over_a_model_that_does_not_fit_the_source_is_refused_naming_the_input_and_the_columns()
    {
        var model = await ReadyModelAsync();
        var source = await CreateFlowersAsync(3);
        var name = Sql.UniqueName("scores");

        // The model's one input, float_input, is no column; a mapping names a column the source lacks; one gives 3 of 4.
        var unmapped = await Assert.ThrowsAsync<ModelAsDataException>(() => Tables.CreateAsync(new(name, source, ["id"], model, null), Ct));
        var missing = await Assert.ThrowsAsync<ModelAsDataException>(() => Tables.CreateAsync(
            new(name, source, ["id"], model, FeatureMapping.Parse("""{"float_input": ["sepal_length", "sepal_width", "petal_length", "nope"]}""")), Ct));
        var tooFew = await Assert.ThrowsAsync<ModelAsDataException>(() => Tables.CreateAsync(
            new(name, source, ["id"], model, FeatureMapping.Parse("""{"float_input": ["sepal_length", "sepal_width", "petal_length"]}""")), Ct));

        foreach (var error in new[] { unmapped, missing, tooFew })
        {
            // The stores disagree on the code: SQLite's FeatureMapping says FeatureMismatch, mad.map_features raises
            // invalid_parameter_value, which maps to InvalidArgument.
            Assert.Contains(error.Code, new[] { ErrorCode.FeatureMismatch, ErrorCode.InvalidArgument });
            Assert.EndsWith("Columns: id, sepal_length, sepal_width, petal_length, petal_width.", error.Message, StringComparison.Ordinal);
        }

        const string mapIt = """Map it with features => '{"float_input": ["column1", "column2", ...]}'.""";
        Assert.StartsWith($"Model '{model}' input float_input float[-1,4] takes 4 value(s) per row, but the table has no column 'float_input'. {mapIt}", unmapped.Message, StringComparison.Ordinal);
        Assert.StartsWith($"Model '{model}' input float_input float[-1,4] takes 4 value(s) per row, but the mapping gives 3 column(s). {mapIt}", tooFew.Message, StringComparison.Ordinal);
        // The stores name the table differently here: SQLite says "the table", PostgreSQL its qualified name.
        Assert.StartsWith($"Model '{model}' input 'float_input' is mapped to column 'nope', which ", missing.Message, StringComparison.Ordinal);
        Assert.DoesNotContain(await Tables.ListAsync(Ct), t => t.Name == name);
        // Nothing was left behind: the name is free for a mapping that fits.
        Assert.Equal(OutputTableOf(name), (await CreateAsync(name, source, model)).OutputTable);
    }

    /// <summary>A ready random forest over iris under a fresh name.</summary>
    private async Task<string> ReadyModelAsync()
    {
        var model = Sql.UniqueName("iris");
        await PushReadyAsync(model, RandomForest);
        return model;
    }

    private Task<PredictionTable> CreateAsync(string name, string source, string model) =>
        Tables.CreateAsync(new PredictionTableSpec(name, source, ["id"], model, FeatureMapping.Parse(IrisFeatures)), Ct);

    /// <summary>A table of <paramref name="rows"/> flowers keyed 1..rows: the MANIFEST's three iris rows, then deterministic ones.</summary>
    private async Task<string> CreateFlowersAsync(int rows)
    {
        var name = Sql.UniqueName("flowers");
        await ExecuteAsync($"CREATE TABLE {name} (id integer PRIMARY KEY, sepal_length real, sepal_width real, petal_length real, petal_width real)");
        var values = Enumerable.Range(1, rows).Select(id =>
        {
            var features = id <= s_iris.Length
                ? s_iris[id - 1].Features
                : [4.3 + id % 37 * 0.1, 2.0 + id % 23 * 0.1, 1.0 + id % 59 * 0.1, 0.1 + id % 25 * 0.1];
            return string.Create(CultureInfo.InvariantCulture, $"({id}, {string.Join(", ", features.Select(f => f.ToString("0.0", CultureInfo.InvariantCulture)))})");
        });
        await ExecuteAsync($"INSERT INTO {name} VALUES {string.Join(", ", values)}");
        return name;
    }

    private async Task<long> ScalarAsync(string sql) => Assert.Single(await QueryAsync<long>(sql));

    private Task<IReadOnlyList<long>> DistinctVersionsAsync(string name) =>
        QueryAsync<long>($"SELECT DISTINCT CAST(model_version AS bigint) FROM {OutputTableOf(name)}");

    /// <summary>Two descriptions of the same prediction table are equal field by field (the features are JSON).</summary>
    private sealed class PredictionTableComparer : IEqualityComparer<PredictionTable>
    {
        public static readonly PredictionTableComparer Instance = new();

        public bool Equals(PredictionTable? x, PredictionTable? y) =>
            x is not null && y is not null
            && (x.Name, x.Source, x.Model, x.OutputTable, x.RefreshedAt, x.RefreshedVersion, x.RowsScored, x.RowsFailed)
                == (y.Name, y.Source, y.Model, y.OutputTable, y.RefreshedAt, y.RefreshedVersion, y.RowsScored, y.RowsFailed)
            && x.Key.SequenceEqual(y.Key)
            && x.Columns.SequenceEqual(y.Columns)
            && x.Features.ToJsonString() == y.Features.ToJsonString();

        public int GetHashCode(PredictionTable obj) => obj.Name.GetHashCode(StringComparison.Ordinal);
    }
}

using System.Text.Json.Nodes;

namespace ModelAsData.IntegrationTests.Contract;

/// <summary>
/// Feature mapping, written twice (PostgreSQL's mad.map_features; <see cref="FeatureMapping"/> for SQLite), held
/// together here through <see cref="IPredictionTables.CreateAsync"/>: the same cases on both stores, the same mapping,
/// the same <see cref="ErrorCode"/> and word for word the same message. PostgreSQL's text is the authority.
/// </summary>
public abstract class FeatureMappingContractTests(RulesStore store) : IAsyncLifetime
{
    private const string Flowers = "CREATE TABLE flowers (id integer PRIMARY KEY, sepal_length real, sepal_width real, petal_length real, petal_width real)";
    private const string FlowerColumns = "id, sepal_length, sepal_width, petal_length, petal_width";

    /// <summary>mad.map_features raises invalid_parameter_value, which is <see cref="ErrorCode.InvalidArgument"/>.</summary>
    private const ErrorCode MappingError = ErrorCode.InvalidArgument;

    private static readonly JsonArray s_irisColumns = ["sepal_length", "sepal_width", "petal_length", "petal_width"];

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    public async ValueTask InitializeAsync()
    {
        await store.OpenEmptyAsync();
        await store.PushReadyAsync("iris", TestModels.Bytes("skl2onnx_rf_iris.onnx"));
        await store.PushReadyAsync("titanic", TestModels.Bytes("skl2onnx_pipeline_titanic_nozipmap.onnx"));
    }

    public async ValueTask DisposeAsync()
    {
        await store.DisposeAsync();
        GC.SuppressFinalize(this);
    }

    [Fact(Timeout = 90_000)]
    public async Task Without_a_mapping_each_input_feeds_from_the_column_of_its_name()
    {
        await store.ExecuteAsync("CREATE TABLE passengers (id integer PRIMARY KEY, name text, pclass integer, sex text, age real, fare real, embarked text)");

        var table = await CreateAsync("passengers", "titanic", null);

        Assert.Equal("age=age; embarked=embarked; fare=fare; pclass=pclass; sex=sex", Describe(table.Features));
    }

    [Fact(Timeout = 90_000)]
    public async Task Columns_match_without_case_and_the_binding_keeps_the_tables_spelling()
    {
        await store.ExecuteAsync("""CREATE TABLE passengers (id integer PRIMARY KEY, "PClass" integer, "SEX" text, "Age" real, fare real, "EMBARKED" text)""");

        var byName = await CreateAsync("passengers", "titanic", null);
        var explicitly = await CreateAsync("passengers", "titanic", new() { ["pclass"] = "pclass", ["age"] = new JsonArray("AGE") });

        Assert.Equal("age=Age; embarked=EMBARKED; fare=fare; pclass=PClass; sex=SEX", Describe(byName.Features));
        Assert.Equal("age=Age; embarked=EMBARKED; fare=fare; pclass=PClass; sex=SEX", Describe(explicitly.Features));
    }

    [Fact(Timeout = 90_000)]
    public async Task A_wide_input_takes_an_explicit_list_of_columns_in_its_order()
    {
        await store.ExecuteAsync(Flowers);

        var table = await CreateAsync("flowers", "iris", new() { ["float_input"] = new JsonArray("petal_width", "petal_length", "sepal_width", "sepal_length") });

        Assert.Equal("float_input=petal_width,petal_length,sepal_width,sepal_length", Describe(table.Features));
    }

    [Fact(Timeout = 90_000)]
    public async Task Without_a_mapping_the_versions_metadata_features_are_used()
    {
        await store.ExecuteAsync(Flowers);
        await store.PushReadyAsync("mapped", TestModels.Bytes("skl2onnx_rf_iris.onnx"), new JsonObject { ["features"] = new JsonObject { ["float_input"] = s_irisColumns.DeepClone() } });

        var table = await CreateAsync("flowers", "mapped", null);

        Assert.Equal("float_input=sepal_length,sepal_width,petal_length,petal_width", Describe(table.Features));
    }

    [Fact(Timeout = 90_000)]
    public async Task A_wide_input_without_a_mapping_says_how_to_map_it()
    {
        await store.ExecuteAsync(Flowers);

        Assert.Equal((MappingError,
                $"Model 'iris' input float_input float[-1,4] takes 4 value(s) per row, but the table has no column 'float_input'. Map it with features => '{{\"float_input\": [\"column1\", \"column2\", ...]}}'. Columns: {FlowerColumns}."),
            await FailsAsync("flowers", "iris", null));
    }

    [Fact(Timeout = 90_000)]
    public async Task A_list_of_the_wrong_width_says_how_many_columns_it_gave()
    {
        await store.ExecuteAsync(Flowers);

        Assert.Equal((MappingError,
                $"Model 'iris' input float_input float[-1,4] takes 4 value(s) per row, but the mapping gives 3 column(s). Map it with features => '{{\"float_input\": [\"column1\", \"column2\", ...]}}'. Columns: {FlowerColumns}."),
            await FailsAsync("flowers", "iris@1", new() { ["float_input"] = new JsonArray("sepal_length", "sepal_width", "petal_length") }));
    }

    [Fact(Timeout = 90_000)]
    public async Task An_unknown_column_is_named_with_the_columns_there_are()
    {
        await store.ExecuteAsync(Flowers);
        await store.ExecuteAsync("CREATE TABLE passengers (id integer PRIMARY KEY, pclass integer, sex text, fare real, embarked text)");

        Assert.Equal((MappingError, $"Model 'iris' input 'float_input' is mapped to column 'petal_wdith', which {store.Relation("flowers")} does not have. Columns: {FlowerColumns}."),
            await FailsAsync("flowers", "iris", new() { ["float_input"] = new JsonArray("sepal_length", "sepal_width", "petal_length", "petal_wdith") }));
        Assert.Equal((MappingError, $"Model 'titanic' input 'age' is mapped to column 'age', which {store.Relation("passengers")} does not have. Columns: id, pclass, sex, fare, embarked."),
            await FailsAsync("passengers", "titanic", null));
    }

    [Fact(Timeout = 90_000)]
    public async Task An_input_the_model_does_not_take_is_named_with_the_inputs_it_has()
    {
        await store.ExecuteAsync(Flowers);

        // One unknown name: PostgreSQL lists several in jsonb's key order (shorter keys first), C# in the order given.
        Assert.Equal((MappingError, "The mapping names 'colour', which model 'iris' does not take; its inputs: float_input."),
            await FailsAsync("flowers", "iris", new() { ["float_input"] = s_irisColumns.DeepClone(), ["colour"] = "sepal_length" }));
    }

    [Theory(Timeout = 90_000)]
    [InlineData("5", "5")]
    [InlineData("null", "null")]
    [InlineData("true", "true")]
    public async Task A_mapping_that_is_not_column_names_is_refused(string value, string shown)
    {
        await store.ExecuteAsync(Flowers);

        Assert.Equal((MappingError, $"The mapping of input 'float_input' must be a column name or a list of column names; got {shown}."),
            await FailsAsync("flowers", "iris", new() { ["float_input"] = JsonNode.Parse(value) }));
    }

    /// <summary>"input=column,column; …" in input order by name: PostgreSQL's jsonb does not keep the keys' order.</summary>
    private static string Describe(JsonObject features) => string.Join("; ", features
        .OrderBy(p => p.Key, StringComparer.Ordinal)
        .Select(p => $"{p.Key}={string.Join(",", p.Value!.AsArray().Select(c => (string?)c))}"));

    private Task<PredictionTable> CreateAsync(string source, string model, JsonObject? features) =>
        store.Tables.CreateAsync(new PredictionTableSpec(Sql.UniqueName("scores"), source, ["id"], model, features), Ct);

    private async Task<(ErrorCode, string)> FailsAsync(string source, string model, JsonObject? features)
    {
        var error = await Assert.ThrowsAsync<ModelAsDataException>(() => CreateAsync(source, model, features));
        return (error.Code, error.Message);
    }
}

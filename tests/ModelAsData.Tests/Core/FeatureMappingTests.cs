using System.Text.Json.Nodes;
using ModelAsData.Core;

namespace ModelAsData.Tests.Core;

public sealed class FeatureMappingTests
{
    private static readonly string[] s_titanicColumns = ["id", "pclass", "sex", "age", "fare", "embarked", "name"];
    private static readonly string[] s_flowerColumns = ["id", "sepal_length", "sepal_width", "petal_length", "petal_width", "species"];

    [Fact]
    public void Named_inputs_map_to_columns_of_the_same_name()
    {
        var mapping = FeatureMapping.Resolve(LoadedModels.Titanic.Signature, "titanic", null, "passengers", s_titanicColumns);
        Assert.Equal(["pclass", "sex", "age", "fare", "embarked"], mapping.SlotColumns);
        Assert.Equal("""{"pclass":["pclass"],"sex":["sex"],"age":["age"],"fare":["fare"],"embarked":["embarked"]}""", mapping.Json.ToJsonString());
    }

    [Fact]
    public void Column_names_match_case_insensitively_and_keep_the_tables_spelling()
    {
        string[] columns = ["ID", "PClass", "SEX", "Age", "Fare", "Embarked"];
        var mapping = FeatureMapping.Resolve(LoadedModels.Titanic.Signature, "titanic", null, "passengers", columns);
        Assert.Equal(["PClass", "SEX", "Age", "Fare", "Embarked"], mapping.SlotColumns);

        var explicitMapping = FeatureMapping.Parse("""{"float_input": ["SEPAL_LENGTH", "Sepal_Width", "petal_LENGTH", "petal_width"]}""");
        var iris = FeatureMapping.Resolve(LoadedModels.RandomForestIris.Signature, "iris", explicitMapping, "flowers", s_flowerColumns);
        Assert.Equal(["sepal_length", "sepal_width", "petal_length", "petal_width"], iris.SlotColumns);
    }

    [Fact]
    public void Explicit_json_maps_a_wide_input_to_a_list_of_columns_in_order()
    {
        var json = FeatureMapping.Parse("""{"float_input": ["petal_width", "petal_length", "sepal_width", "sepal_length"]}""");
        var mapping = FeatureMapping.Resolve(LoadedModels.RandomForestIris.Signature, "iris", json, "flowers", s_flowerColumns);
        Assert.Equal(["petal_width", "petal_length", "sepal_width", "sepal_length"], mapping.SlotColumns);
        Assert.Equal("""{"float_input":["petal_width","petal_length","sepal_width","sepal_length"]}""", mapping.Json.ToJsonString());
    }

    [Fact]
    public void Explicit_json_may_rename_some_inputs_and_leave_the_rest_by_name()
    {
        string[] columns = ["id", "class", "sex", "age_years", "fare", "port"];
        var json = FeatureMapping.Parse("""{"pclass": "class", "age": ["age_years"], "embarked": "port"}""");
        var mapping = FeatureMapping.Resolve(LoadedModels.Titanic.Signature, "titanic", json, "passengers", columns);
        Assert.Equal(["class", "sex", "age_years", "fare", "port"], mapping.SlotColumns);
    }

    [Fact]
    public void Metadata_form_is_the_same_json_as_an_explicit_mapping()
    {
        // The registry's metadata key "features" is passed in exactly like a user's mapping.
        var metadata = JsonNode.Parse("""{"features": {"float_input": ["sepal_length", "sepal_width", "petal_length", "petal_width"]}}""")!.AsObject();
        var mapping = FeatureMapping.Resolve(LoadedModels.RandomForestIris.Signature, "iris", metadata["features"] as JsonObject, "flowers", s_flowerColumns);
        Assert.Equal(["sepal_length", "sepal_width", "petal_length", "petal_width"], mapping.SlotColumns);
    }

    [Fact]
    public void Wide_input_without_a_mapping_names_the_input_its_width_and_the_columns()
    {
        var e = Assert.Throws<ModelAsDataException>(() => FeatureMapping.Resolve(LoadedModels.RandomForestIris.Signature, "iris", null, "flowers", s_flowerColumns));
        Assert.Equal(ErrorCode.InvalidArgument, e.Code);
        Assert.Contains("Model 'iris' input float_input float[-1,4] takes 4 value(s) per row", e.Message);
        Assert.Contains("the table has no column 'float_input'", e.Message);
        Assert.Contains("Columns: id, sepal_length, sepal_width, petal_length, petal_width, species.", e.Message);
        Assert.Contains("""features => '{"float_input": ["column1", "column2", ...]}'""", e.Message);
    }

    [Fact]
    public void Mapping_with_the_wrong_number_of_columns_says_how_many_it_gave()
    {
        var json = FeatureMapping.Parse("""{"float_input": ["sepal_length", "sepal_width", "petal_length"]}""");
        var e = Assert.Throws<ModelAsDataException>(() => FeatureMapping.Resolve(LoadedModels.RandomForestIris.Signature, "iris", json, "flowers", s_flowerColumns));
        Assert.Equal(ErrorCode.InvalidArgument, e.Code);
        Assert.Contains("takes 4 value(s) per row, but the mapping gives 3 column(s)", e.Message);
        Assert.Contains("Columns: id, sepal_length", e.Message);
    }

    [Fact]
    public void Mapping_to_a_missing_column_names_the_input_the_column_and_the_tables_columns()
    {
        var json = FeatureMapping.Parse("""{"float_input": ["sepal_length", "sepal_width", "petal_length", "petal_wdith"]}""");
        var e = Assert.Throws<ModelAsDataException>(() => FeatureMapping.Resolve(LoadedModels.RandomForestIris.Signature, "iris", json, "flowers", s_flowerColumns));
        Assert.Equal(ErrorCode.InvalidArgument, e.Code);
        Assert.Equal(
            "Model 'iris' input 'float_input' is mapped to column 'petal_wdith', which flowers does not have. Columns: id, sepal_length, sepal_width, petal_length, petal_width, species.",
            e.Message);
    }

    [Fact]
    public void Missing_column_of_a_named_input_is_named_with_the_tables_columns()
    {
        string[] columns = ["id", "pclass", "sex", "fare", "embarked"];
        var e = Assert.Throws<ModelAsDataException>(() => FeatureMapping.Resolve(LoadedModels.Titanic.Signature, "titanic", null, "passengers", columns));
        Assert.Equal(ErrorCode.InvalidArgument, e.Code);
        Assert.Equal("Model 'titanic' input 'age' is mapped to column 'age', which passengers does not have. Columns: id, pclass, sex, fare, embarked.", e.Message);
    }

    [Fact]
    public void Mapping_an_input_the_model_does_not_take_lists_its_inputs()
    {
        var json = FeatureMapping.Parse("""{"float_input": ["sepal_length", "sepal_width", "petal_length", "petal_width"], "colour": "species"}""");
        var e = Assert.Throws<ModelAsDataException>(() => FeatureMapping.Resolve(LoadedModels.RandomForestIris.Signature, "iris", json, "flowers", s_flowerColumns));
        Assert.Equal(ErrorCode.InvalidArgument, e.Code);
        Assert.Equal("The mapping names 'colour', which model 'iris' does not take; its inputs: float_input.", e.Message);
    }

    [Theory]
    [InlineData("""{"float_input": 4}""")]
    [InlineData("""{"float_input": {"a": "b"}}""")]
    [InlineData("""{"float_input": [1, 2, 3, 4]}""")]
    [InlineData("""{"float_input": ["a", null, "b", "c"]}""")]
    public void Mapping_values_that_are_not_column_names_are_refused_clearly(string json)
    {
        var mapping = FeatureMapping.Parse(json);
        var e = Assert.Throws<ModelAsDataException>(() => FeatureMapping.Resolve(LoadedModels.RandomForestIris.Signature, "iris", mapping, "flowers", s_flowerColumns));
        Assert.True(e.Code is ErrorCode.InvalidArgument or ErrorCode.InvalidArgument, e.Code.ToString());
        Assert.Contains("float_input", e.Message);
    }

    [Theory]
    [InlineData("[\"a\"]", "must be a JSON object")]
    [InlineData("{not json", "not valid JSON")]
    [InlineData("42", "must be a JSON object")]
    public void Features_text_that_is_not_a_json_object_is_refused(string json, string expected)
    {
        var e = Assert.Throws<ModelAsDataException>(() => FeatureMapping.Parse(json));
        Assert.Equal(ErrorCode.InvalidArgument, e.Code);
        Assert.Contains(expected, e.Message);
    }

    [Theory]
    [InlineData(null)]
    [InlineData("")]
    [InlineData("  ")]
    public void Blank_features_mean_no_mapping(string? json)
    {
        Assert.Null(FeatureMapping.Parse(json));
    }
}

using System.Text.Json.Nodes;
using ModelAsData.Core;
using ModelAsData.Core.Onnx;
using ModelAsData.Core.Scoring;

namespace ModelAsData.Tests.Core;

public sealed class JsonFeaturesTests
{
    [Fact]
    public void Array_feeds_a_wide_input_and_scores_the_manifest_label()
    {
        using var scorer = LoadedModels.RandomForestIris.CreateScorer(1);
        JsonFeatures.AddRow(scorer, JsonFeatures.Parse("""{"float_input": [7.0, 3.2, 4.7, 1.4]}"""), "iris");
        var batch = scorer.Score();
        Assert.Equal(1L, batch.GetPrediction(0));
        Assert.Equal(0.98999935, batch.GetDouble(0, 2), 1e-6);
    }

    [Fact]
    public void Scalars_feed_inputs_one_wide_of_int_string_and_float()
    {
        using var scorer = LoadedModels.Titanic.CreateScorer(1);
        JsonFeatures.AddRow(scorer, JsonFeatures.Parse("""{"pclass": 1, "sex": "female", "age": 29, "fare": 211.3375, "embarked": "S"}"""), "titanic");
        var batch = scorer.Score();
        Assert.Equal(1L, batch.GetValue(0, 0));
        Assert.Equal(0.88553804, batch.GetDouble(0, 2), 1e-6);
    }

    [Fact]
    public void A_one_element_array_feeds_a_scalar_input_too()
    {
        using var scorer = LoadedModels.Titanic.CreateScorer(1);
        JsonFeatures.AddRow(scorer, JsonFeatures.Parse("""{"pclass": [3], "sex": ["male"], "age": [22], "fare": [7.25], "embarked": ["S"]}"""), "titanic");
        Assert.Equal(0.90150315, scorer.Score().GetDouble(0, 1), 1e-6);
    }

    [Fact]
    public void Missing_input_is_named_with_what_the_model_takes()
    {
        using var scorer = LoadedModels.Titanic.CreateScorer(1);
        var e = Mismatch(scorer, """{"pclass": 1, "sex": "female", "fare": 211.3, "embarked": "S"}""", "titanic");
        Assert.Contains("Features do not fit model 'titanic': input 'age' is missing.", e.Message);
        Assert.Contains("It takes: pclass int64[-1,1], sex string[-1,1], age float[-1,1], fare float[-1,1], embarked string[-1,1].", e.Message);
        Assert.Equal(0, scorer.Count);
    }

    [Fact]
    public void Unknown_input_is_named()
    {
        using var scorer = LoadedModels.RandomForestIris.CreateScorer(1);
        var e = Mismatch(scorer, """{"float_input": [1, 2, 3, 4], "tenure": 3}""", "iris");
        Assert.Contains("it has no input 'tenure'", e.Message);
        Assert.Contains("It takes: float_input float[-1,4]", e.Message);
    }

    [Theory]
    [InlineData("""{"float_input": [5.1, 3.5, 1.4]}""", 3)]
    [InlineData("""{"float_input": [5.1, 3.5, 1.4, 0.2, 9]}""", 5)]
    [InlineData("""{"float_input": 5.1}""", 1)]
    public void Wrong_width_says_how_many_values_the_input_takes_and_how_many_were_given(string json, int given)
    {
        using var scorer = LoadedModels.RandomForestIris.CreateScorer(1);
        var e = Mismatch(scorer, json, "iris");
        Assert.Contains($"input 'float_input' takes 4 value(s); {given} given", e.Message);
    }

    [Fact]
    public void Text_in_a_numeric_input_names_the_model_the_input_and_the_value()
    {
        using var scorer = LoadedModels.RandomForestIris.CreateScorer(1);
        var e = Mismatch(scorer, """{"float_input": [5.1, "wide", 1.4, 0.2]}""", "iris@2");
        Assert.Equal("Model 'iris@2': text 'wide' cannot feed input 'float_input' (float).", e.Message);
        Assert.Equal(0, scorer.Count);
    }

    [Fact]
    public void Null_feature_is_refused_naming_the_input_position()
    {
        using var scorer = LoadedModels.RandomForestIris.CreateScorer(1);
        var e = Mismatch(scorer, """{"float_input": [5.1, 3.5, null, 0.2]}""", "iris");
        Assert.Equal("Model 'iris': null cannot feed input 'float_input'[2] (float).", e.Message);
    }

    [Fact]
    public void Fraction_in_an_integer_input_is_refused()
    {
        using var scorer = LoadedModels.Titanic.CreateScorer(1);
        var e = Mismatch(scorer, """{"pclass": 1.5, "sex": "female", "age": 29, "fare": 211.3, "embarked": "S"}""", "titanic");
        Assert.Contains("1.5 does not fit input 'pclass' (int64)", e.Message);
    }

    [Fact]
    public void A_failed_row_leaves_the_scorer_usable_for_the_next()
    {
        using var scorer = LoadedModels.RandomForestIris.CreateScorer(1);
        Assert.Throws<ModelAsDataException>(() => JsonFeatures.AddRow(scorer, JsonFeatures.Parse("""{"float_input": [5.1, "x", 1.4, 0.2]}"""), "iris"));
        JsonFeatures.AddRow(scorer, JsonFeatures.Parse("""{"float_input": [6.3, 3.3, 6.0, 2.5]}"""), "iris");
        Assert.Equal(2L, scorer.Score().GetPrediction(0));
    }

    [Theory]
    [InlineData("[5.1, 3.5]", "must be a JSON object")]
    [InlineData("{\"float_input\": [5.1,", "not valid JSON")]
    [InlineData("\"text\"", "must be a JSON object")]
    public void Features_that_are_not_a_json_object_are_an_invalid_argument(string json, string expected)
    {
        var e = Assert.Throws<ModelAsDataException>(() => JsonFeatures.Parse(json));
        Assert.Equal(ErrorCode.InvalidArgument, e.Code);
        Assert.Contains(expected, e.Message);
    }

    [Fact]
    public void Scored_row_as_json_names_model_version_and_every_column()
    {
        using var scorer = LoadedModels.RandomForestIris.CreateScorer(1);
        JsonFeatures.AddRow(scorer, JsonFeatures.Parse("""{"float_input": [6.3, 3.3, 6.0, 2.5]}"""), "iris");
        var version = new ModelAsData.Core.Registry.ModelVersion("iris", 3, LoadedModels.RandomForestIris.Sha256, 61224,
            ModelAsData.Core.Registry.VersionStatus.Ready, null, LoadedModels.RandomForestIris.Signature, [], "me", DateTimeOffset.UnixEpoch);
        var json = RequestPredictor.ToJson(scorer.Score(), version);
        Assert.Equal("iris", (string?)json["model"]);
        Assert.Equal(3, (int?)json["version"]);
        Assert.Equal(2L, (long?)json["label"]);
        Assert.Equal(0.99999934, (double?)json["probability_2"] ?? 0, 1e-6);
        Assert.Equal(["model", "version", "label", "probability_0", "probability_1", "probability_2"], json.Select(p => p.Key));
    }

    [Fact]
    public void Columns_of_the_titanic_model_decode_as_typed_values()
    {
        var columns = LoadedModels.Titanic.Signature.Columns;
        Assert.Equal([ColumnType.Integer, ColumnType.Real, ColumnType.Real], columns.Select(c => c.Type));
    }

    [Fact]
    public void Json_nested_unevenly_feeds_nothing_and_says_why()
    {
        using var scorer = LoadedModels.RandomForestIris.CreateScorer(1);
        var e = Assert.Throws<ModelAsDataException>(() =>
            JsonFeatures.AddRow(scorer, new JsonObject { ["float_input"] = new JsonArray(new JsonArray(1, 2), 1, 2, 3) }, "iris"));
        Assert.Equal(ErrorCode.FeatureMismatch, e.Code);
        Assert.Contains("input 'float_input' is not a rectangular array", e.Message);
    }

    /// <summary>Adding the row of <paramref name="json"/> to <paramref name="scorer"/> fails as a feature mismatch; the error is returned for its message.</summary>
    private static ModelAsDataException Mismatch(ModelScorer scorer, string json, string model)
    {
        var e = Assert.Throws<ModelAsDataException>(() => JsonFeatures.AddRow(scorer, JsonFeatures.Parse(json), model));
        Assert.Equal(ErrorCode.FeatureMismatch, e.Code);
        return e;
    }
}

using ModelAsData.Core;
using ModelAsData.Core.Onnx;
using ModelAsData.Core.Scoring;

namespace ModelAsData.Tests.Sqlite;

/// <summary>Online scoring of JSON features through the registry of a real SQLite file.</summary>
public sealed class RequestPredictorTests
{
    [Fact]
    public async Task Predict_answers_with_the_version_behind_the_reference_and_every_column()
    {
        await using var db = await TempDatabase.CreateAsync();
        await db.PushAsync("iris", "skl2onnx_rf_iris.onnx");
        await db.PushAsync("iris", "skl2onnx_rf_iris.onnx");
        await db.Registry.SetAliasAsync("iris", "production", 1);
        using var cache = new ModelCache();
        var predictor = new RequestPredictor(db.Registry, cache);

        var answer = await predictor.PredictAsync(ModelReference.Parse("iris"), JsonFeatures.Parse("""{"float_input": [7.0, 3.2, 4.7, 1.4]}"""));
        Assert.Equal("iris", (string?)answer["model"]);
        Assert.Equal(1, (int?)answer["version"]);
        Assert.Equal(1L, (long?)answer["label"]);
        Assert.Equal(0.98999935, (double)answer["probability_1"]!, 1e-6);
        Assert.True(cache.Contains(TestSha256("skl2onnx_rf_iris.onnx")));

        var second = await predictor.PredictAsync(ModelReference.Parse("iris@2"), JsonFeatures.Parse("""{"float_input": [6.3, 3.3, 6.0, 2.5]}"""));
        Assert.Equal((2, 2L), ((int?)second["version"], (long?)second["label"]));
    }

    [Fact]
    public async Task Predict_with_scalar_features_of_several_types()
    {
        await using var db = await TempDatabase.CreateAsync();
        await db.PushAsync("titanic", "skl2onnx_pipeline_titanic_nozipmap.onnx");
        using var cache = new ModelCache();
        var answer = await new RequestPredictor(db.Registry, cache).PredictAsync(ModelReference.Parse("titanic"),
            JsonFeatures.Parse("""{"pclass": 2, "sex": "male", "age": 30, "fare": 13, "embarked": "missing"}"""));
        Assert.Equal(["model", "version", "label", "probabilities_0", "probabilities_1"], answer.Select(p => p.Key));
        Assert.Equal(0L, (long?)answer["label"]);
    }

    [Fact]
    public async Task Unknown_model_and_mismatched_features_fail_with_their_codes()
    {
        await using var db = await TempDatabase.CreateAsync();
        await db.PushAsync("iris", "skl2onnx_rf_iris.onnx");
        using var cache = new ModelCache();
        var predictor = new RequestPredictor(db.Registry, cache);

        var missing = await Assert.ThrowsAsync<ModelAsDataException>(() => predictor.PredictAsync(ModelReference.Parse("churn"), JsonFeatures.Parse("{}")));
        Assert.Equal(ErrorCode.NotFound, missing.Code);
        Assert.Contains("the models are 'iris'", missing.Message);

        var mismatch = await Assert.ThrowsAsync<ModelAsDataException>(() => predictor.PredictAsync(ModelReference.Parse("iris"), JsonFeatures.Parse("""{"float_input": [1, 2]}""")));
        Assert.Equal(ErrorCode.FeatureMismatch, mismatch.Code);
        Assert.Contains("Features do not fit model 'iris': input 'float_input' takes 4 value(s); 2 given.", mismatch.Message);
    }

    private static string TestSha256(string file) =>
        Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(TestModels.ExternalBytes(file)));
}

using Microsoft.ML.OnnxRuntime;
using ModelAsData.Core.Onnx;
using ModelAsData.Core.Scoring;

namespace ModelAsData.Tests.Onnx;

/// <summary>
/// Whole tensors per row through the row scorer: the PyTorch models of tests/models (make_tensor_models.py), each
/// answer compared with ONNX Runtime's own on the same tensor, run here through its C# API and nothing of ModelAsData.
/// </summary>
public sealed class RowTensorTests
{
    public static string Made(string file) => Path.Combine(AppContext.BaseDirectory, "TestData", file);

    [Fact]
    public void Rows_of_token_ids_of_different_lengths_are_scored_in_groups_and_match_onnx_runtime_row_by_row()
    {
        using var model = OnnxModel.Load(File.ReadAllBytes(Made("token_mean.onnx")));
        Assert.Null(model.Signature.TensorOnly);
        Assert.True(model.Signature.Inputs[0].IsRagged);
        Assert.Equal(["scores_0", "scores_1", "scores_2", "token_scores"], model.Signature.Columns.Select(c => c.Name));
        long[][] rows = [[1, 2, 3], [4, 5, 6, 7, 8], [9, 10, 11], [12], [13, 14, 15, 16, 17]];
        using var scorer = model.CreateScorer(8);
        foreach (var ids in rows)
        {
            scorer.BeginRow();
            Assert.Null(scorer.SetTensor(0, ids));
            scorer.EndRow();
        }

        var scored = scorer.Score();

        using var session = new InferenceSession(Made("token_mean.onnx"));
        for (var r = 0; r < rows.Length; r++)
        {
            var (scores, tokenScores) = RunAlone(session, rows[r]);
            for (var c = 0; c < 3; c++)
            {
                Assert.Equal(scores[c], scored.GetDouble(r, c), 5);
            }

            var tensor = scored.GetTensor(r, 3);
            Assert.Equal([rows[r].Length], tensor.Dims);
            Assert.Equal(tokenScores, (float[])tensor.Values);
        }
    }

    [Fact]
    public void A_uint8_image_per_row_feeds_the_cnn_and_its_feature_map_keeps_its_dimensions()
    {
        using var model = OnnxModel.Load(File.ReadAllBytes(Made("cnn_uint8.onnx")));
        Assert.Null(model.Signature.TensorOnly);
        Assert.Equal(FeatureType.Uint8, model.Signature.Inputs[0].Type);
        var features = model.Signature.Columns.Single(c => c.Name == "features");
        Assert.Equal(ColumnType.RealArray, features.Type);
        var images = Enumerable.Range(0, 3).Select(i => Enumerable.Range(0, 784).Select(p => (byte)((p * (i + 3)) % 256)).ToArray()).ToArray();
        using var scorer = model.CreateScorer(4);
        foreach (var image in images)
        {
            scorer.BeginRow();
            Assert.Null(scorer.SetTensor(0, image));
            scorer.EndRow();
        }

        var scored = scorer.Score();

        using var session = new InferenceSession(Made("cnn_uint8.onnx"));
        using var input = OrtValue.CreateTensorValueFromMemory(images.SelectMany(b => b).ToArray(), [3, 1, 28, 28]);
        using var results = session.Run(new RunOptions(), ["image"], [input], ["logits", "features"]);
        var logits = results[0].GetTensorDataAsSpan<float>().ToArray();
        var maps = results[1].GetTensorDataAsSpan<float>().ToArray();
        for (var r = 0; r < 3; r++)
        {
            for (var c = 0; c < 10; c++)
            {
                Assert.Equal(logits[(r * 10) + c], (float)scored.GetDouble(r, c));
            }

            var map = scored.GetTensor(r, model.Signature.Columns.ToList().IndexOf(features));
            Assert.Equal([4L, 7, 7], map.Dims);
            Assert.Equal(maps.AsSpan(r * 196, 196).ToArray(), (float[])map.Values);
        }
    }

    [Fact]
    public void An_array_of_the_wrong_size_or_shape_is_refused_with_what_the_input_takes()
    {
        using var model = OnnxModel.Load(File.ReadAllBytes(Made("cnn_uint8.onnx")));
        using var scorer = model.CreateScorer(2);
        scorer.BeginRow();
        Assert.Equal("input 'image' takes [1, 28, 28] (784 value(s)) per row; the array has 783 value(s)", scorer.SetTensor(0, new byte[783]));
        Assert.Equal("input 'image' takes [1, 28, 28] (784 value(s)) per row; the array has dimensions [28, 14, 2]", scorer.SetTensor(0, new short[28, 14, 2]));
        Assert.Null(scorer.SetTensor(0, new short[28, 28])); // a size-1 dimension may be left out
        Assert.Equal("element 3: 256 does not fit input 'image' (uint8)", scorer.SetTensor(0, new long[] { 0, 1, 2, 256 }.Concat(new long[780]).ToArray()));
        scorer.CancelRow();
    }

    [Fact]
    public void Several_named_inputs_of_different_types_take_arrays_of_their_own_types()
    {
        using var model = OnnxModel.Load(File.ReadAllBytes(Made("mixed_inputs.onnx")));
        Assert.Equal([FeatureType.Float, FeatureType.Int32, FeatureType.Bool, FeatureType.Double], model.Signature.Inputs.Select(i => i.Type));
        Assert.Equal(["score", "kept_0", "kept_1", "kept_2", "kept_3", "grid"], model.Signature.Columns.Select(c => c.Name));
        Assert.Equal(ColumnType.DoubleArray, model.Signature.Columns[^1].Type);
        using var scorer = model.CreateScorer(2);
        var pixels = new float[3, 4, 4];
        for (var i = 0; i < 48; i++)
        {
            pixels[i / 16, i / 4 % 4, i % 4] = i / 48f;
        }

        scorer.BeginRow();
        Assert.Null(scorer.SetTensor(0, pixels));
        Assert.Null(scorer.SetTensor(1, new int[] { 1, 2, 3, 4 }));
        Assert.Null(scorer.SetTensor(2, new bool[] { true, false, true, true }));
        Assert.Null(scorer.SetTensor(3, new double[] { 2.0 }));
        scorer.EndRow();
        var scored = scorer.Score();

        Assert.Equal([1L, 0L, 3L, 4L], Enumerable.Range(1, 4).Select(c => (long)scored.GetValue(0, c)));
        var grid = scored.GetTensor(0, 5);
        Assert.Equal([2L, 2], grid.Dims);
        // mean over the 3 channels of pixel (y, x) is (16 + 4y + x) / 48, times scale 2
        Assert.Equal(new[] { 32.0 / 48, 34.0 / 48, 40.0 / 48, 42.0 / 48 }, ((double[])grid.Values).Select(v => Math.Round(v, 6)).ToArray(), new RoundedComparer());
    }

    [Fact]
    public void Nested_json_feeds_a_tensor_input_and_tensor_outputs_come_back_nested()
    {
        using var model = OnnxModel.Load(File.ReadAllBytes(Made("mixed_inputs.onnx")));
        using var scorer = model.CreateScorer(1);
        var json = JsonFeatures.Parse("""
            {"pixels": [[[0,0,0,0],[0,0,0,0],[0,0,0,0],[0,0,0,0]],[[1,1,1,1],[1,1,1,1],[1,1,1,1],[1,1,1,1]],[[2,2,2,2],[2,2,2,2],[2,2,2,2],[2,2,2,2]]],
             "counts": [5, 6, 7, 8], "flags": [true, true, false, false], "scale": [0.5]}
            """);
        JsonFeatures.AddRow(scorer, json, "mixed");
        var answer = RequestPredictor.ToJson(scorer.Score(), "mixed", 1);
        Assert.Equal("[[0.5,0.5],[0.5,0.5]]", answer["grid"]!.ToJsonString());
        Assert.Equal(6L, answer["kept_1"]!.GetValue<long>());

        using var tokens = OnnxModel.Load(File.ReadAllBytes(Made("token_mean.onnx")));
        using var tokenScorer = tokens.CreateScorer(1);
        JsonFeatures.AddRow(tokenScorer, JsonFeatures.Parse("""{"ids": [1, 2, 3, 4]}"""), "tokens");
        var tokenAnswer = RequestPredictor.ToJson(tokenScorer.Score(), "tokens", 1);
        Assert.Equal(4, tokenAnswer["token_scores"]!.AsArray().Count);
        scorer.Clear();
        var ragged = Assert.Throws<ModelAsData.Core.ModelAsDataException>(() => JsonFeatures.AddRow(scorer, JsonFeatures.Parse("""{"pixels": [[1, 2], [3]], "counts": [1,2,3,4], "flags": [true,true,true,true], "scale": [1]}"""), "mixed"));
        Assert.Contains("not a rectangular array", ragged.Message, StringComparison.Ordinal);
    }

    private static (float[] Scores, float[] TokenScores) RunAlone(InferenceSession session, long[] ids)
    {
        using var input = OrtValue.CreateTensorValueFromMemory(ids, [1, ids.Length]);
        using var results = session.Run(new RunOptions(), ["ids"], [input], ["scores", "token_scores"]);
        return (results[0].GetTensorDataAsSpan<float>().ToArray(), results[1].GetTensorDataAsSpan<float>().ToArray());
    }

    private sealed class RoundedComparer : IEqualityComparer<double>
    {
        public bool Equals(double x, double y) => Math.Abs(x - y) < 1e-6;

        public int GetHashCode(double obj) => 0;
    }
}

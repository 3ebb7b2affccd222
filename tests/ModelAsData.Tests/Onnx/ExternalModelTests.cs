using ModelAsData.Core;
using ModelAsData.Core.Onnx;

namespace ModelAsData.Tests.Onnx;

/// <summary>Every model in shared/models/external loads and gives the outputs its MANIFEST lists.</summary>
public sealed class ExternalModelTests
{
    private static readonly float[][] s_irisRows = [[5.1f, 3.5f, 1.4f, 0.2f], [7.0f, 3.2f, 4.7f, 1.4f], [6.3f, 3.3f, 6.0f, 2.5f]];

    [Fact]
    public void Logistic_regression_zipmap_is_removed_and_gives_the_source_probabilities()
    {
        using var model = OnnxModel.Load(TestModels.ExternalBytes("skl2onnx_logreg_iris.onnx"));
        Assert.Equal(["label", "probability_0", "probability_1", "probability_2"], model.Signature.Columns.Select(c => c.Name));
        Assert.Equal(["0", "1", "2"], model.Signature.Outputs[1].Classes!);

        var batch = Score(model, [[1, 2], [3, 4], [5, 6]]);
        Assert.Equal([0L, 0L, 0L], Enumerable.Range(0, 3).Select(r => batch.GetValue(r, 0)));
        Assert.Equal(0.9999734163284302, batch.GetDouble(0, 1), 1e-6);
        Assert.Equal(2.656836477399338e-05, batch.GetDouble(0, 2), 1e-9);
        Assert.Equal(5.499288818100467e-06, batch.GetDouble(2, 3), 1e-9);

        var iris = Score(model, [[5.1f, 3.5f], [7.0f, 3.2f], [6.3f, 3.3f]]);
        Assert.Equal([0L, 2L, 2L], Enumerable.Range(0, 3).Select(r => iris.GetValue(r, 0)));
        Assert.Equal(0.8000747, iris.GetDouble(1, 3), 1e-6);
    }

    [Fact]
    public void Random_forest_gives_the_manifest_labels_and_probabilities()
    {
        using var model = OnnxModel.Load(TestModels.ExternalBytes("skl2onnx_rf_iris.onnx"));
        var batch = Score(model, s_irisRows);
        Assert.Equal([0L, 1L, 2L], Enumerable.Range(0, 3).Select(r => batch.GetValue(r, 0)));
        Assert.Equal(0.99999934, batch.GetDouble(0, 1), 1e-6);
        Assert.Equal(0.98999935, batch.GetDouble(1, 2), 1e-6);
        Assert.Equal(0.01, batch.GetDouble(1, 3), 1e-6);
        Assert.Equal(0.99999934, batch.GetDouble(2, 3), 1e-6);
    }

    [Fact]
    public void Titanic_pipeline_takes_five_named_inputs_of_three_types()
    {
        using var model = OnnxModel.Load(TestModels.ExternalBytes("skl2onnx_pipeline_titanic_nozipmap.onnx"));
        Assert.Equal(["pclass", "sex", "age", "fare", "embarked"], model.Signature.Inputs.Select(i => i.Name));
        Assert.Equal(["label", "probabilities_0", "probabilities_1"], model.Signature.Columns.Select(c => c.Name));

        using var scorer = model.CreateScorer(8);
        object[][] rows =
        [
            [1L, "female", 29.0, 211.3375, "S"],
            [3L, "male", 22.0, 7.25, "S"],
            [2L, "male", double.NaN, 13.0, "missing"],
            [4L, "unknown", 30.0, 13.0, "Z"],
        ];
        var batch = ScoreValues(scorer, rows);
        Assert.Equal([1L, 0L, 0L, 1L], Enumerable.Range(0, 4).Select(r => batch.GetValue(r, 0)));
        Assert.Equal(0.88553804, batch.GetDouble(0, 2), 1e-6);
        Assert.Equal(0.90150315, batch.GetDouble(1, 1), 1e-6);
        Assert.Equal(0.32941988, batch.GetDouble(2, 2), 1e-6);
        Assert.Equal(0.5623933, batch.GetDouble(3, 2), 1e-6);
    }

    [Fact]
    public void Xgboost_regressor_gives_the_manifest_values()
    {
        using var model = OnnxModel.Load(TestModels.ExternalBytes("onnxmltools_xgboost_regressor.onnx"));
        Assert.Equal(["variable"], model.Signature.Columns.Select(c => c.Name));
        var batch = Score(model, [[5.1f, 3.5f, 1.4f, 0.2f], [7.0f, 3.2f, 4.7f, 1.4f], [0, 0, 0, 0]]);
        Assert.Equal(-6.7949295E-06, batch.GetDouble(0, 0), 1e-7);
        Assert.Equal(0.9998387, batch.GetDouble(1, 0), 1e-6);
        Assert.Equal(0.0041531622, batch.GetDouble(2, 0), 1e-7);
    }

    [Fact]
    public void Fixed_batch_regressor_is_scored_one_row_at_a_time()
    {
        using var model = OnnxModel.Load(TestModels.ExternalBytes("skl2onnx_2018_gbr_batch1.onnx"));
        Assert.Equal(1, model.MaxBatchSize);
        using var scorer = model.CreateScorer(100);
        Assert.Equal(1, scorer.Capacity);
        float[][] rows = [[0, 1], [1, 1], [2, 0], [0.5f, 0.5f]];
        double[] expected = [61.120003, 31.310001, 47.57, 61.120003];
        for (var i = 0; i < rows.Length; i++)
        {
            Assert.Equal(expected[i], Score(model, [rows[i]]).GetDouble(0, 0), 1e-4);
        }
    }

    [Fact]
    public void String_label_classifier_keeps_its_class_names()
    {
        using var model = OnnxModel.Load(TestModels.ExternalBytes("skl2onnx_2018_gbc_strlabels_batch1.onnx"));
        Assert.Equal(["label", "probabilities_a", "probabilities_b"], model.Signature.Columns.Select(c => c.Name));
        Assert.Equal(ColumnType.Text, model.Signature.Columns[0].Type);
        float[][] rows = [[0, 1], [1, 1], [2, 0]];
        string[] labels = ["A", "B", "A"];
        double[] probabilityB = [0.24536586, 0.5176473, 0.24536586];
        for (var i = 0; i < rows.Length; i++)
        {
            var batch = Score(model, [rows[i]]);
            Assert.Equal(labels[i], batch.GetValue(0, 0));
            Assert.Equal(probabilityB[i], batch.GetDouble(0, model.Signature.FindProbabilityColumn("B", "gbc")), 1e-6);
        }
    }

    [Theory]
    [InlineData(0, 2)]
    [InlineData(1, 0)]
    [InlineData(2, 9)]
    public void Mnist_scores_match_the_model_zoo_test_vectors(int set, long digit)
    {
        using var model = OnnxModel.Load(TestModels.ExternalBytes("mnist-8/model.onnx"));
        Assert.Equal(1, model.MaxBatchSize);
        var input = TensorFile.ReadFloats(TestModels.External($"mnist-8/test_data_set_{set}/input_0.pb"));
        var expected = TensorFile.ReadFloats(TestModels.External($"mnist-8/test_data_set_{set}/output_0.pb"));
        var batch = Score(model, [input]);

        var scores = Enumerable.Range(0, 10).Select(i => batch.GetDouble(0, i)).ToArray();
        for (var i = 0; i < 10; i++)
        {
            Assert.Equal(expected[i], scores[i], Math.Abs(expected[i]) * 1e-5 + 1e-3);
        }

        Assert.Equal(digit, batch.GetPrediction(0));
    }

    [Fact]
    public void Dynamic_batch_cnn_gives_each_row_the_same_result_as_alone()
    {
        using var model = OnnxModel.Load(TestModels.ExternalBytes("pytorch_image_classifier32.onnx"));
        Assert.True(model.MaxBatchSize > 1);
        var x = Enumerable.Range(0, 3072).Select(k => (k % 7) / 7.0f - 0.5f).ToArray();
        var batch = Score(model, [x, new float[3072]]);
        double[] first = [-0.98822397, -1.8841277, -0.43481123, -0.8522012, 0.3309205, -1.2861353, 0.27421582, -1.3350527, -0.84566915, -1.1971153];
        double[] zeros = [0.14899117, -1.172007, 0.8004222, -0.15294641, 0.43912885, -0.51678574, -0.53547555, -1.0455854, 0.48249954, -1.0830646];
        for (var i = 0; i < 10; i++)
        {
            Assert.Equal(first[i], batch.GetDouble(0, i), 1e-5);
            Assert.Equal(zeros[i], batch.GetDouble(1, i), 1e-5);
        }

        Assert.Equal(4L, batch.GetPrediction(0));
    }

    [Fact]
    public void Custom_op_model_is_refused_with_onnx_runtimes_reason()
    {
        var e = Assert.Throws<ModelAsDataException>(() => OnnxModel.Load(TestModels.ExternalBytes("ortext_custom_op_negpos.onnx")));
        Assert.Equal(ErrorCode.InvalidModel, e.Code);
        Assert.Contains("No opset import for domain 'ai.onnx.contrib'", e.Message);
    }

    [Theory]
    [InlineData(300)]
    [InlineData(17)]
    public void Truncated_model_is_refused_with_onnx_runtimes_reason(int length)
    {
        var bytes = TestModels.ExternalBytes("skl2onnx_logreg_iris.onnx")[..length];
        var e = Assert.Throws<ModelAsDataException>(() => OnnxModel.Load(bytes));
        Assert.Equal(ErrorCode.InvalidModel, e.Code);
        Assert.Contains("ONNX Runtime cannot load the model", e.Message);
    }

    [Fact]
    public void Random_bytes_and_empty_files_are_refused()
    {
        var random = new byte[4096];
        new Random(7).NextBytes(random);
        Assert.Equal(ErrorCode.InvalidModel, Assert.Throws<ModelAsDataException>(() => OnnxModel.Load(random)).Code);
        Assert.Contains("empty", Assert.Throws<ModelAsDataException>(() => OnnxModel.Load([])).Message);
        var text = "this is not an onnx model"u8.ToArray();
        Assert.Equal(ErrorCode.InvalidModel, Assert.Throws<ModelAsDataException>(() => OnnxModel.Load(text)).Code);
    }

    /// <summary>Scores rows of values of any supported type, asserting each converts.</summary>
    internal static ScoredBatch ScoreValues(ModelScorer scorer, object[][] rows)
    {
        foreach (var row in rows)
        {
            scorer.BeginRow();
            for (var slot = 0; slot < row.Length; slot++)
            {
                Assert.Null(scorer.Set(slot, row[slot]));
            }

            scorer.EndRow();
        }

        return scorer.Score();
    }

    internal static ScoredBatch Score(OnnxModel model, float[][] rows)
    {
        var scorer = model.CreateScorer(rows.Length);
        foreach (var row in rows)
        {
            scorer.BeginRow();
            for (var slot = 0; slot < row.Length; slot++)
            {
                scorer.SetFloat(slot, row[slot]);
            }

            scorer.EndRow();
        }

        return scorer.Score();
    }
}

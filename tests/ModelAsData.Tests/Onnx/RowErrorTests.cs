using Microsoft.ML.OnnxRuntime;
using ModelAsData.Core;
using ModelAsData.Core.Onnx;
using ModelAsData.Core.Scoring;

namespace ModelAsData.Tests.Onnx;

/// <summary>
/// A grouped batch (rows of different lengths) in which ONNX Runtime fails on some rows: token_mean.onnx embeds ids
/// 0–99, so a row holding id 150 fails in ONNX Runtime's Gather, as a sequence past a text model's positions does.
/// Only that row gets an error; every other row, also of its own length, is scored as ONNX Runtime scores it alone.
/// </summary>
public sealed class RowErrorTests
{
    [Fact]
    public void A_row_onnx_runtime_fails_on_gets_its_own_error_and_the_rest_of_its_group_and_the_other_groups_are_scored()
    {
        using var model = OnnxModel.Load(File.ReadAllBytes(RowTensorTests.Made("token_mean.onnx")));
        long[][] rows = [[1, 2, 3], [4, 5, 150], [9, 10, 11], [12], [13, 14, 15, 16, 17], [7, 8, 9], [200]];
        using var scorer = model.CreateScorer(8);
        foreach (var ids in rows)
        {
            scorer.BeginRow();
            Assert.Null(scorer.SetTensor(0, ids));
            scorer.EndRow();
        }

        var scored = scorer.Score();

        Assert.Equal(2, scored.Failed);
        Assert.StartsWith("ONNX Runtime could not score this row (input 'ids' [3]): ", scored.Error(1), StringComparison.Ordinal);
        Assert.Contains("out of data bounds", scored.Error(1), StringComparison.Ordinal);
        Assert.StartsWith("ONNX Runtime could not score this row (input 'ids' [1]): ", scored.Error(6), StringComparison.Ordinal);
        // Reading a failed row's values without asking is that row's error, never another row's numbers.
        var read = Assert.Throws<ModelAsDataException>(() => scored.GetDouble(1, 0));
        Assert.Equal((ErrorCode.FeatureMismatch, scored.Error(1)), (read.Code, read.Message));
        Assert.Throws<ModelAsDataException>(() => scored.GetTensor(6, 3));

        using var session = new InferenceSession(RowTensorTests.Made("token_mean.onnx"));
        foreach (var r in new[] { 0, 2, 3, 4, 5 })
        {
            Assert.Null(scored.Error(r));
            using var input = OrtValue.CreateTensorValueFromMemory(rows[r], [1, rows[r].Length]);
            using var alone = session.Run(new RunOptions(), ["ids"], [input], ["scores", "token_scores"]);
            var scores = alone[0].GetTensorDataAsSpan<float>().ToArray();
            for (var c = 0; c < 3; c++)
            {
                Assert.Equal(scores[c], scored.GetDouble(r, c), 5);
            }

            Assert.Equal(alone[1].GetTensorDataAsSpan<float>().ToArray(), (float[])scored.GetTensor(r, 3).Values, new Close());
        }
    }

    [Fact]
    public void The_next_batch_of_the_same_scorer_starts_without_the_last_ones_errors()
    {
        using var model = OnnxModel.Load(File.ReadAllBytes(RowTensorTests.Made("token_mean.onnx")));
        using var scorer = model.CreateScorer(2);
        scorer.BeginRow();
        scorer.SetTensor(0, new long[] { 150, 1 });
        scorer.EndRow();
        Assert.Equal(1, scorer.Score().Failed);

        scorer.Clear();
        scorer.BeginRow();
        scorer.SetTensor(0, new long[] { 3, 1 });
        scorer.EndRow();
        var scored = scorer.Score();

        Assert.Equal((0, (string?)null), (scored.Failed, scored.Error(0)));
        Assert.Equal(2, scored.GetTensor(0, 3).Values.Length);
    }

    [Fact]
    public void One_row_alone_that_onnx_runtime_fails_on_is_a_feature_mismatch_when_its_answer_is_read()
    {
        using var model = OnnxModel.Load(File.ReadAllBytes(RowTensorTests.Made("token_mean.onnx")));
        using var scorer = model.CreateScorer(1);
        JsonFeatures.AddRow(scorer, JsonFeatures.Parse("""{"ids": [1, 2, 999]}"""), "tokens");

        var failed = Assert.Throws<ModelAsDataException>(() => RequestPredictor.ToJson(scorer.Score(), "tokens", 1));

        Assert.Equal(ErrorCode.FeatureMismatch, failed.Code);
        Assert.StartsWith("ONNX Runtime could not score this row (input 'ids' [3]): ", failed.Message, StringComparison.Ordinal);
    }

    private sealed class Close : IEqualityComparer<float>
    {
        public bool Equals(float x, float y) => Math.Abs(x - y) <= 1e-7 + (1e-3 * Math.Abs(x));

        public int GetHashCode(float obj) => 0;
    }
}

using Microsoft.ML.OnnxRuntime;
using ModelAsData.Core;
using ModelAsData.Core.Onnx;

namespace ModelAsData.Tests.Onnx;

/// <summary>
/// A batch of fixed-size rows (one ONNX Runtime call for all of them) in which ONNX Runtime fails on some rows:
/// gather_ids.onnx (tests/models/make_onnx_graphs.py) looks ids up in a table of 10 rows, so an id of 10 or more
/// fails in Gather. Only the rows that hold one get an error; the others are scored as ONNX Runtime scores them.
/// gather_one.onnx is the same graph with a fixed batch of 1 (ids [1, 2]): scored one row per call.
/// </summary>
public sealed class FixedRowErrorTests
{
    private static readonly long[][] Ids = [[1, 2], [3, 40], [5, 6], [0, 9], [12, 1], [7, 7], [8, 2]];

    [Fact]
    public void A_row_onnx_runtime_fails_on_gets_its_own_error_and_the_other_rows_of_the_batch_are_scored()
    {
        using var model = OnnxModel.Load(File.ReadAllBytes(RowTensorTests.Made("gather_ids.onnx")));
        using var scorer = model.CreateScorer(16);
        Fill(scorer, Ids);

        var scored = scorer.Score();

        Assert.Equal(2, scored.Failed);
        Assert.StartsWith("ONNX Runtime could not score this row: ", scored.Error(1), StringComparison.Ordinal);
        Assert.Contains("idx=40", scored.Error(1), StringComparison.Ordinal); // ONNX Runtime's own words for the id past the table
        Assert.StartsWith("ONNX Runtime could not score this row: ", scored.Error(4), StringComparison.Ordinal);
        Assert.Equal((ErrorCode.FeatureMismatch, scored.Error(4)), Read(() => scored.GetDouble(4, 0)));
        AssertAsAlone(scored, "gather_ids.onnx", [0, 2, 3, 5, 6]);

        // The next batch, all good, is one call again with no error left over.
        scorer.Clear();
        Fill(scorer, [[4, 4], [2, 3]]);
        var next = scorer.Score();
        Assert.Equal(0, next.Failed);
        Assert.Equal(7.8, next.GetDouble(0, 0), 5); // table rows 4 and 4: 2 × (1.2 + 1.3 + 1.4)
    }

    [Fact]
    public void A_model_with_a_fixed_batch_of_one_scores_any_number_of_rows_one_per_call_and_a_bad_row_fails_alone()
    {
        using var model = OnnxModel.Load(File.ReadAllBytes(RowTensorTests.Made("gather_one.onnx")));
        Assert.Equal(1, model.MaxBatchSize);
        Assert.Equal([1L, 2L], model.Signature.Inputs[0].Shape);
        using var scorer = model.CreateScorer(64);
        Assert.Equal(1, scorer.Capacity);

        var errors = new List<string?>();
        var scores = new List<double?>();
        foreach (var ids in Ids)
        {
            scorer.Clear();
            Fill(scorer, [ids]);
            var scored = scorer.Score();
            errors.Add(scored.Error(0));
            scores.Add(scored.Error(0) is null ? scored.GetDouble(0, 0) : null);
        }

        Assert.Equal([1, 4], errors.Select((e, i) => (e, i)).Where(p => p.e is not null).Select(p => p.i));
        Assert.All(errors.Where(e => e is not null), e => Assert.StartsWith("ONNX Runtime could not score this row: ", e, StringComparison.Ordinal));
        using var batched = OnnxModel.Load(File.ReadAllBytes(RowTensorTests.Made("gather_ids.onnx")));
        using var reference = batched.CreateScorer(8);
        Fill(reference, Ids);
        var all = reference.Score();
        // A batch and a row alone may differ in the last bit of a float sum.
        Assert.All([0, 2, 3, 5, 6], r => Assert.Equal(all.GetDouble(r, 0), scores[r]!.Value, 1e-6));
    }

    private static void Fill(ModelScorer scorer, long[][] rows)
    {
        foreach (var ids in rows)
        {
            scorer.BeginRow();
            Assert.Null(scorer.SetTensor(0, ids));
            scorer.EndRow();
        }
    }

    private static (ErrorCode, string) Read(Func<object> read)
    {
        var e = Assert.Throws<ModelAsDataException>(read);
        return (e.Code, e.Message);
    }

    private static void AssertAsAlone(ScoredBatch scored, string file, int[] rows)
    {
        using var session = new InferenceSession(RowTensorTests.Made(file));
        foreach (var r in rows)
        {
            Assert.Null(scored.Error(r));
            using var input = OrtValue.CreateTensorValueFromMemory(Ids[r], [1, 2]);
            using var alone = session.Run(new RunOptions(), ["ids"], [input], ["score", "looked_up"]);
            Assert.Equal(alone[0].GetTensorDataAsSpan<float>()[0], (float)scored.GetDouble(r, 0));
            Assert.Equal(alone[1].GetTensorDataAsSpan<float>().ToArray(), (float[])scored.GetTensor(r, 1).Values);
        }
    }
}

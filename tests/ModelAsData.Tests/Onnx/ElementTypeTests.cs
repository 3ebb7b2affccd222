using ModelAsData.Core;
using ModelAsData.Core.Onnx;

namespace ModelAsData.Tests.Onnx;

/// <summary>Inputs and outputs of every supported element type, fixed and dynamic shapes, several outputs.</summary>
public sealed class ElementTypeTests
{
    [Fact]
    public void Double_int32_and_bool_inputs_are_fed_and_decoded()
    {
        var bytes = BuiltModels.Identity(
            ("d", BuiltModels.Double, [null, 2]),
            ("i", BuiltModels.Int32, [null, 1]),
            ("b", BuiltModels.Bool, [null]));
        using var model = OnnxModel.Load(bytes);
        Assert.Equal([FeatureType.Double, FeatureType.Int32, FeatureType.Bool], model.Signature.Inputs.Select(i => i.Type));
        Assert.Equal(4, model.Signature.FeatureCount);
        Assert.Equal(["d_out_0", "d_out_1", "i_out", "b_out"], model.Signature.Columns.Select(c => c.Name));
        Assert.Equal([ColumnType.Real, ColumnType.Real, ColumnType.Integer, ColumnType.Integer], model.Signature.Columns.Select(c => c.Type));

        using var scorer = model.CreateScorer(4);
        object[][] rows = [[1.5, 2.25, 7L, true], [-3.0, 1e300, -2L, false]];
        var batch = ExternalModelTests.ScoreValues(scorer, rows);
        Assert.Equal(2, batch.Count);
        Assert.Equal(1.5, batch.GetValue(0, 0));
        Assert.Equal(1e300, batch.GetValue(1, 1));
        Assert.Equal(7L, batch.GetValue(0, 2));
        Assert.Equal(-2L, batch.GetValue(1, 2));
        Assert.Equal(1L, batch.GetValue(0, 3));
        Assert.Equal(0L, batch.GetValue(1, 3));
    }

    [Fact]
    public void Values_that_do_not_fit_an_input_are_refused_with_the_input_named()
    {
        var bytes = BuiltModels.Identity(("i", BuiltModels.Int32, [null, 1]), ("b", BuiltModels.Bool, [null, 1]), ("l", BuiltModels.Int64, [null, 1]));
        using var model = OnnxModel.Load(bytes);
        using var scorer = model.CreateScorer(2);
        scorer.BeginRow();
        Assert.Contains("input 'i' (int32)", scorer.Set(0, 2.5));
        Assert.Contains("input 'i' (int32)", scorer.Set(0, 1L << 40));
        Assert.Contains("input 'b' (bool)", scorer.Set(1, 2L));
        Assert.Contains("text 'abc' cannot feed input 'l' (int64)", scorer.Set(2, "abc"));
        Assert.Contains("null cannot feed input 'l' (int64)", scorer.Set(2, (object?)null));
        Assert.Null(scorer.Set(1, "true"));
        Assert.Null(scorer.Set(0, 3.0));
        scorer.CancelRow();
        Assert.Equal(0, scorer.Count);
    }

    [Fact]
    public void String_input_and_output_round_trip()
    {
        using var model = OnnxModel.Load(BuiltModels.Identity(("s", 8, [null, 1])));
        Assert.Equal(ColumnType.Text, model.Signature.Columns[0].Type);
        using var scorer = model.CreateScorer(3);
        foreach (var text in new[] { "alpha", "", "ünïcode ✓" })
        {
            scorer.BeginRow();
            Assert.Null(scorer.Set(0, text));
            scorer.EndRow();
        }

        var batch = scorer.Score();
        Assert.Equal(["alpha", "", "ünïcode ✓"], Enumerable.Range(0, 3).Select(r => batch.GetValue(r, 0)));
    }

    [Fact]
    public void Wide_outputs_decode_into_one_array_column()
    {
        using var model = OnnxModel.Load(BuiltModels.Identity(("x", BuiltModels.Float, [null, 40])));
        var column = Assert.Single(model.Signature.Columns);
        Assert.Equal(ColumnType.RealArray, column.Type);
        var row = Enumerable.Range(0, 40).Select(i => (float)i).ToArray();
        var batch = ExternalModelTests.Score(model, [row]);
        Assert.Equal(row.Select(f => (double)f), batch.GetArray(0, 0));
        var tensor = (RowTensor)batch.GetValue(0, 0);
        Assert.Equal(row, (float[])tensor.Values);
        Assert.Equal([40L], tensor.Dims);
    }

    [Fact]
    public void Batches_of_varying_size_reuse_the_scorer()
    {
        using var model = OnnxModel.Load(TestModels.ExternalBytes("skl2onnx_rf_iris.onnx"));
        using var scorer = model.CreateScorer(64);
        var random = new Random(3);
        foreach (var size in new[] { 64, 1, 17, 64, 3 })
        {
            scorer.Clear();
            var rows = Enumerable.Range(0, size).Select(_ => new[] { 4 + (random.NextSingle() * 3), 2 + random.NextSingle(), 1 + (random.NextSingle() * 5), random.NextSingle() * 2 }).ToArray();
            foreach (var row in rows)
            {
                scorer.BeginRow();
                for (var slot = 0; slot < 4; slot++)
                {
                    scorer.SetFloat(slot, row[slot]);
                }

                scorer.EndRow();
            }

            var batch = scorer.Score();
            for (var r = 0; r < size; r++)
            {
                var alone = ExternalModelTests.Score(model, [rows[r]]);
                Assert.Equal(alone.GetValue(0, 0), batch.GetValue(r, 0));
                Assert.Equal(alone.GetDouble(0, 3), batch.GetDouble(r, 3), 1e-6);
            }
        }
    }

    [Fact]
    public void Oversized_models_are_refused_before_loading()
    {
        var e = Assert.Throws<ModelAsDataException>(() => OnnxModel.Load(new byte[2048], new ScoringOptions(MaxModelBytes: 1024)));
        Assert.Equal(ErrorCode.InvalidModel, e.Code);
        Assert.Contains("limit is 1,024", e.Message);
    }

    [Fact]
    public void A_model_loads_once_per_process_through_the_cache()
    {
        using var cache = new ModelCache();
        var loads = 0;
        var bytes = TestModels.ExternalBytes("skl2onnx_logreg_iris.onnx");
        var first = cache.GetOrLoad("k", () => { loads++; return bytes; });
        var second = cache.GetOrLoad("k", () => { loads++; return bytes; });
        Assert.Same(first, second);
        Assert.Equal(1, loads);
    }
}

using ModelAsData.Core.Onnx;
using ModelAsData.Core.Scoring;

namespace ModelAsData.Tests.Onnx;

/// <summary>
/// uint64 outputs decode into columns exactly (docs/TENSORS.md): uint64_columns.onnx (tests/models/make_onnx_graphs.py)
/// passes a uint64 [N, 4] input through Slice, Identity and Reshape; values past 2^63 and 2^53 come back unchanged.
/// </summary>
public sealed class Uint64ColumnTests
{
    /// <summary>2^64 - 1, 2^63, 2^53 + 1 (the first whole number a double cannot hold), 0.</summary>
    public static readonly ulong[] Edges = [ulong.MaxValue, 1UL << 63, (1UL << 53) + 1, 0];

    [Fact]
    public void A_uint64_model_decodes_into_uint64_columns_and_array_columns_and_is_no_longer_tensor_only()
    {
        using var model = OnnxModel.Load(File.ReadAllBytes(RowTensorTests.Made("uint64_columns.onnx")));

        Assert.Null(model.Signature.TensorOnly);
        Assert.Equal(
            [("first", ColumnType.Uint64), ("echo_0", ColumnType.Uint64), ("echo_1", ColumnType.Uint64), ("echo_2", ColumnType.Uint64),
             ("echo_3", ColumnType.Uint64), ("grid", ColumnType.Uint64Array)],
            model.Signature.Columns.Select(c => (c.Name, c.Type)));
        // The stored form SQL reads (mad.output_sql_type): 'uint64' and 'uint64_array'.
        var json = model.Signature.ToJson();
        Assert.Contains("\"type\":\"uint64\"", json, StringComparison.Ordinal);
        Assert.Contains("\"type\":\"uint64_array\"", json, StringComparison.Ordinal);
        Assert.Equal(model.Signature.Columns, ModelSignature.FromJson(json).Columns);
    }

    [Fact]
    public void Values_past_2_to_the_63_and_2_to_the_53_come_back_exactly_from_numbers_text_and_json()
    {
        using var model = OnnxModel.Load(File.ReadAllBytes(RowTensorTests.Made("uint64_columns.onnx")));
        using var scorer = model.CreateScorer(3);
        scorer.BeginRow();
        Assert.Null(scorer.SetTensor(0, Edges));
        scorer.EndRow();
        scorer.BeginRow();
        for (var s = 0; s < 4; s++)
        {
            // As text (a TEXT or numeric column read as text) and as a decimal (Npgsql's numeric).
            Assert.Null(s % 2 == 0 ? scorer.Set(s, Edges[s].ToString(System.Globalization.CultureInfo.InvariantCulture)) : scorer.Set(s, (object)(decimal)Edges[s]));
        }

        scorer.EndRow();
        scorer.BeginRow();
        Assert.Null(scorer.SetTensor(0, new object?[] { "18446744073709551615", 9223372036854775808UL, 9007199254740993L, 0L }));
        scorer.EndRow();

        var scored = scorer.Score();

        for (var row = 0; row < 3; row++)
        {
            Assert.Equal(ulong.MaxValue, scored.GetValue(row, 0));
            Assert.Equal(Edges, Enumerable.Range(1, 4).Select(c => (ulong)scored.GetValue(row, c)));
            var grid = scored.GetTensor(row, 5);
            Assert.Equal(Edges, (ulong[])grid.Values);
            Assert.Equal([2L, 2L], grid.Dims);
        }

        var answer = RequestPredictor.ToJson(scored, "u64", 1);
        Assert.Equal("18446744073709551615", answer["first"]!.ToJsonString());
        Assert.Equal("9007199254740993", answer["echo_2"]!.ToJsonString());
        Assert.Equal("[[18446744073709551615,9223372036854775808],[9007199254740993,0]]", answer["grid"]!.ToJsonString());
        Assert.Equal(ulong.MaxValue, scored.GetPrediction(0));
    }

    [Fact]
    public void Json_features_past_2_to_the_63_feed_a_uint64_input_exactly_and_a_number_too_big_is_refused()
    {
        using var model = OnnxModel.Load(File.ReadAllBytes(RowTensorTests.Made("uint64_columns.onnx")));
        using var scorer = model.CreateScorer(1);
        JsonFeatures.AddRow(scorer, JsonFeatures.Parse("""{"x": [18446744073709551615, 9223372036854775808, 9007199254740993, 0]}"""), "u64");

        var scored = scorer.Score();

        Assert.Equal(Edges, (ulong[])scored.GetTensor(0, 5).Values);
        scorer.Clear();
        var e = Assert.Throws<ModelAsData.Core.ModelAsDataException>(() => JsonFeatures.AddRow(scorer, JsonFeatures.Parse("""{"x": [18446744073709551616, 1, 2, 3]}"""), "u64"));
        Assert.Contains("does not fit", e.Message, StringComparison.Ordinal);
    }
}

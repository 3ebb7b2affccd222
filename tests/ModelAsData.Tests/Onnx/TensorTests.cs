using System.Buffers;
using System.Text.Json;
using ModelAsData.Core;
using ModelAsData.Core.Onnx;
using ModelAsData.Core.Onnx.Tensors;

namespace ModelAsData.Tests.Onnx;

/// <summary>Tensors of every element type and shape, in and out of ONNX Runtime and JSON without loss.</summary>
public sealed class TensorTests
{
    public static TheoryData<int, FeatureType, string> Elements => new()
    {
        { BuiltModels.Float, FeatureType.Float, "[0.1,-3.4028235E+38,1E-45,\"NaN\",\"-Infinity\"]" },
        { BuiltModels.Double, FeatureType.Double, "[0.1,1.7976931348623157E+308,5E-324,\"Infinity\",-0]" },
        { BuiltModels.Float16, FeatureType.Float16, "[0.1,65500,6E-08,-2,\"NaN\"]" },
        { BuiltModels.Bfloat16, FeatureType.Bfloat16, "[1.5,3.3895314E+38,-0.0078125,9.1835E-41,\"Infinity\"]" },
        { BuiltModels.Int8, FeatureType.Int8, "[-128,127,0,1,-1]" },
        { BuiltModels.Int16, FeatureType.Int16, "[-32768,32767,0,1,-1]" },
        { BuiltModels.Int32, FeatureType.Int32, "[-2147483648,2147483647,0,1,-1]" },
        { BuiltModels.Int64, FeatureType.Int64, "[-9223372036854775808,9223372036854775807,9007199254740993,1,-1]" },
        { BuiltModels.Uint8, FeatureType.Uint8, "[0,255,1,2,3]" },
        { BuiltModels.Uint16, FeatureType.Uint16, "[0,65535,1,2,3]" },
        { BuiltModels.Uint32, FeatureType.Uint32, "[0,4294967295,1,2,3]" },
        { BuiltModels.Uint64, FeatureType.Uint64, "[0,18446744073709551615,9007199254740993,18446744073709551557,3]" },
        { BuiltModels.Bool, FeatureType.Bool, "[true,false,true,true,false]" },
        { BuiltModels.String, FeatureType.String, "[\"a\",\"\",\"ünïcode ✓\",\"x\",\"y\"]" },
    };

    [Theory]
    [MemberData(nameof(Elements))]
    public void Every_element_type_goes_through_onnx_runtime_and_json_unchanged(int onnxType, FeatureType type, string json)
    {
        // [N, T]: two dynamic dimensions, which rows of a table feed from an array column; every output decodes into columns.
        using var model = OnnxModel.Load(BuiltModels.Identity(("x", onnxType, [null, null])));
        Assert.Equal(type, model.Signature.Inputs[0].Type);
        Assert.Equal([-1L, -1L], model.Signature.Inputs[0].Shape);
        Assert.Null(model.Signature.TensorOnly);

        var values = JsonDocument.Parse(json).RootElement.EnumerateArray().ToList();
        var input = TensorJson.Read("x", type, [1, 5], values);
        var output = Assert.Single(model.Run("identity", [input]));
        Assert.Equal("x_out", output.Name);
        Assert.Equal(type, output.Type);
        Assert.Equal([1L, 5L], output.Shape);
        Assert.Equal(input.Bytes, output.Bytes);
        Assert.Equal(input.Strings, output.Strings);
        Assert.Equal(json, Write(output));
    }

    [Fact]
    public void Half_precision_is_parsed_from_the_text_not_through_double()
    {
        // 0.1 as float16 is 0x2E66; 65504 is the largest float16, 2049 rounds to even (2048).
        var tensor = TensorJson.Read("h", FeatureType.Float16, [3], JsonDocument.Parse("[0.1, 65504, 2049]").RootElement.EnumerateArray().ToList());
        Assert.Equal(new byte[] { 0x66, 0x2E, 0xFF, 0x7B, 0x00, 0x68 }, tensor.Bytes);
        Assert.Equal((ushort)0x3F80, TensorJson.ToBfloat16(1f));
        Assert.Equal((ushort)0x3F80, TensorJson.ToBfloat16(BitConverter.UInt32BitsToSingle(0x3F808000))); // tie: to even
        Assert.Equal((ushort)0x3F82, TensorJson.ToBfloat16(BitConverter.UInt32BitsToSingle(0x3F818000))); // tie: to even
    }

    [Fact]
    public void Values_that_do_not_fit_are_refused_naming_the_element()
    {
        var values = JsonDocument.Parse("[1, 256]").RootElement.EnumerateArray().ToList();
        var e = Assert.Throws<ModelAsDataException>(() => TensorJson.Read("pixels", FeatureType.Uint8, [2], values));
        Assert.Contains("Input 'pixels' element 1 is 256", e.Message, StringComparison.Ordinal);
        var big = JsonDocument.Parse("[18446744073709551616]").RootElement.EnumerateArray().ToList();
        Assert.Throws<ModelAsDataException>(() => TensorJson.Read("n", FeatureType.Uint64, [1], big));
    }

    [Fact]
    public void A_uint64_output_decodes_into_a_uint64_column_per_value_as_other_narrow_outputs_do()
    {
        using var model = OnnxModel.Load(BuiltModels.Identity(("big", BuiltModels.Uint64, [null, 3])));

        Assert.Null(model.Signature.TensorOnly);
        Assert.Equal([("big_out_0", ColumnType.Uint64), ("big_out_1", ColumnType.Uint64), ("big_out_2", ColumnType.Uint64)],
            model.Signature.Columns.Select(c => (c.Name, c.Type)));
        Assert.Contains("\"type\":\"uint64\"", model.Signature.ToJson(), StringComparison.Ordinal);
    }

    [Fact]
    public void Tensors_that_do_not_fit_an_input_are_refused_before_onnx_runtime()
    {
        using var model = OnnxModel.Load(BuiltModels.Identity(("x", BuiltModels.Float, [null, 4])));
        var floats = Tensor.OfBytes("x", FeatureType.Float, [2, 3], new byte[24]);
        Assert.Contains("takes [-1, 4]", Assert.Throws<ModelAsDataException>(() => model.Run("m", [floats])).Message, StringComparison.Ordinal);
        var doubles = Tensor.OfBytes("x", FeatureType.Double, [1, 4], new byte[32]);
        Assert.Contains("holds double values", Assert.Throws<ModelAsDataException>(() => model.Run("m", [doubles])).Message, StringComparison.Ordinal);
        Assert.Contains("no output 'y'", Assert.Throws<ModelAsDataException>(() => model.Run("m", [Tensor.OfBytes("x", FeatureType.Float, [0, 4], [])], ["y"])).Message, StringComparison.Ordinal);
    }

    private static string Write(Tensor tensor)
    {
        var buffer = new ArrayBufferWriter<byte>();
        using (var writer = new Utf8JsonWriter(buffer, new JsonWriterOptions { Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping }))
        {
            TensorJson.WriteData(writer, tensor);
        }

        return System.Text.Encoding.UTF8.GetString(buffer.WrittenSpan);
    }
}

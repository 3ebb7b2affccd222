using System.Buffers.Binary;
using System.Globalization;
using System.Text.Json;
using ModelAsData.Core.Onnx.Proto;

namespace ModelAsData.IntegrationTests.Conformance;

/// <summary>
/// One tensor of an ONNX node test (a serialized <c>onnx.TensorProto</c>), with its elements as text that compares
/// without loss: integers and booleans exactly, floating-point numbers as doubles (every float16, bfloat16 and
/// float is one), strings as themselves. Reads both the typed fields and <c>raw_data</c>.
/// </summary>
internal sealed record NodeTensor(int DataType, long[] Shape, byte[] Bytes, string[]? Strings)
{
    /// <summary>The OIP datatype of each ONNX element type number, or null for those ONNX Runtime tensors do not carry here.</summary>
    public static string? DataTypeName(int dataType) => dataType switch
    {
        1 => "FP32", 2 => "UINT8", 3 => "INT8", 4 => "UINT16", 5 => "INT16", 6 => "INT32", 7 => "INT64", 8 => "BYTES",
        9 => "BOOL", 10 => "FP16", 11 => "FP64", 12 => "UINT32", 13 => "UINT64", 16 => "BF16", _ => null,
    };

    public static int Size(int dataType) => dataType switch
    {
        7 or 11 or 13 => 8,
        1 or 6 or 12 => 4,
        4 or 5 or 10 or 16 => 2,
        2 or 3 or 9 => 1,
        _ => 0,
    };

    public bool IsFloating => DataType is 1 or 10 or 11 or 16;

    public long Count => Shape.Aggregate(1L, (a, b) => a * b);

    public static NodeTensor Read(byte[] pb)
    {
        var proto = TensorProto.Parser.ParseFrom(pb);
        var shape = proto.Dims.ToArray();
        var type = proto.DataType;
        if (type == 8)
        {
            return new NodeTensor(type, shape, [], proto.StringData.Select(s => s.ToStringUtf8()).ToArray());
        }

        var size = Size(type);
        var count = (int)shape.Aggregate(1L, (a, b) => a * b);
        if (!proto.RawData.IsEmpty)
        {
            return new NodeTensor(type, shape, proto.RawData.ToByteArray(), null);
        }

        var bytes = new byte[count * size];
        for (var i = 0; i < count && size > 0; i++)
        {
            var slot = bytes.AsSpan(i * size, size);
            switch (type)
            {
                case 1: BinaryPrimitives.WriteSingleLittleEndian(slot, proto.FloatData[i]); break;
                case 11: BinaryPrimitives.WriteDoubleLittleEndian(slot, proto.DoubleData[i]); break;
                case 7: BinaryPrimitives.WriteInt64LittleEndian(slot, proto.Int64Data[i]); break;
                case 13: BinaryPrimitives.WriteUInt64LittleEndian(slot, proto.Uint64Data[i]); break;
                case 12: BinaryPrimitives.WriteUInt32LittleEndian(slot, (uint)proto.Uint64Data[i]); break;
                default: // int32_data holds every narrower type, float16 and bfloat16 as their bits
                    var bits = proto.Int32Data[i];
                    for (var b = 0; b < size; b++)
                    {
                        slot[b] = (byte)(bits >> (8 * b));
                    }

                    break;
            }
        }

        return new NodeTensor(type, shape, bytes, null);
    }

    /// <summary>Element i as text: exact for integers and booleans, a double's round-trip text for floating point.</summary>
    public string Element(long index)
    {
        if (Strings is not null)
        {
            return Strings[index];
        }

        var e = Bytes.AsSpan((int)(index * Size(DataType)), Size(DataType));
        return DataType switch
        {
            1 => Text(BinaryPrimitives.ReadSingleLittleEndian(e)),
            11 => Text(BinaryPrimitives.ReadDoubleLittleEndian(e)),
            10 => Text((double)BinaryPrimitives.ReadHalfLittleEndian(e)),
            16 => Text(BitConverter.UInt32BitsToSingle((uint)BinaryPrimitives.ReadUInt16LittleEndian(e) << 16)),
            2 => e[0].ToString(CultureInfo.InvariantCulture),
            3 => ((sbyte)e[0]).ToString(CultureInfo.InvariantCulture),
            4 => BinaryPrimitives.ReadUInt16LittleEndian(e).ToString(CultureInfo.InvariantCulture),
            5 => BinaryPrimitives.ReadInt16LittleEndian(e).ToString(CultureInfo.InvariantCulture),
            6 => BinaryPrimitives.ReadInt32LittleEndian(e).ToString(CultureInfo.InvariantCulture),
            7 => BinaryPrimitives.ReadInt64LittleEndian(e).ToString(CultureInfo.InvariantCulture),
            12 => BinaryPrimitives.ReadUInt32LittleEndian(e).ToString(CultureInfo.InvariantCulture),
            13 => BinaryPrimitives.ReadUInt64LittleEndian(e).ToString(CultureInfo.InvariantCulture),
            9 => e[0] != 0 ? "true" : "false",
            _ => throw new NotSupportedException($"ONNX element type {DataType}"),
        };
    }

    /// <summary>The tensor as an OIP request input, written as a Python client writes numpy data (floats as doubles).</summary>
    public void WriteInput(Utf8JsonWriter writer, string name)
    {
        writer.WriteStartObject();
        writer.WriteString("name", name);
        writer.WriteStartArray("shape");
        foreach (var d in Shape)
        {
            writer.WriteNumberValue(d);
        }

        writer.WriteEndArray();
        writer.WriteString("datatype", DataTypeName(DataType));
        writer.WriteStartArray("data");
        for (long i = 0; i < Count; i++)
        {
            var text = Element(i);
            if (Strings is not null || text is "NaN" or "Infinity" or "-Infinity")
            {
                writer.WriteStringValue(text);
            }
            else if (DataType == 9)
            {
                writer.WriteBooleanValue(text == "true");
            }
            else
            {
                writer.WriteRawValue(text);
            }
        }

        writer.WriteEndArray();
        writer.WriteEndObject();
    }

    /// <summary>A JSON element of an OIP output as the same text <see cref="Element"/> gives.</summary>
    public static string Text(JsonElement value) => value.ValueKind switch
    {
        JsonValueKind.String => value.GetString()!,
        JsonValueKind.True => "true",
        JsonValueKind.False => "false",
        _ => value.GetRawText(),
    };

    /// <summary>
    /// Whether <paramref name="actual"/> matches element i within the tolerance ONNX's backend runner uses
    /// (numpy's assert_allclose, rtol 1e-3, atol 1e-7, NaN equal to NaN); other types exactly.
    /// </summary>
    public bool Matches(long index, string actual)
    {
        var expected = Element(index);
        if (!IsFloating)
        {
            return expected == actual;
        }

        var e = double.Parse(expected, CultureInfo.InvariantCulture);
        if (!double.TryParse(actual, NumberStyles.Float, CultureInfo.InvariantCulture, out var a))
        {
            return false;
        }

        if (double.IsNaN(e) || double.IsNaN(a))
        {
            return double.IsNaN(e) && double.IsNaN(a);
        }

        if (double.IsInfinity(e) || double.IsInfinity(a))
        {
            return e == a;
        }

        return Math.Abs(a - e) <= 1e-7 + (1e-3 * Math.Abs(e));
    }

    private static string Text(double value) =>
        double.IsNaN(value) ? "NaN" : double.IsPositiveInfinity(value) ? "Infinity" : double.IsNegativeInfinity(value) ? "-Infinity" : value.ToString("R", CultureInfo.InvariantCulture);

    public override string ToString() => $"{DataTypeName(DataType) ?? DataType.ToString(CultureInfo.InvariantCulture)}[{string.Join(", ", Shape)}]";
}

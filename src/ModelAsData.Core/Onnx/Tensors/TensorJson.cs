using System.Buffers.Binary;
using System.Globalization;
using System.Text.Json;

namespace ModelAsData.Core.Onnx.Tensors;

/// <summary>
/// Tensor elements as JSON values, without loss: integers are read and written as exact integers (uint64 above 2^53
/// and int64 included), float and double as the shortest text that reads back to the same bits, float16 from and to
/// its own shortest text (parsed straight to half precision, never through double), bfloat16 through float (exact:
/// every bfloat16 is a float). Non-finite numbers, which JSON has no literal for, are the strings <c>"NaN"</c>,
/// <c>"Infinity"</c> and <c>"-Infinity"</c>, as System.Text.Json's named literals and numpy read them. Booleans are
/// <c>true</c>/<c>false</c> (0 and 1 are accepted), strings are strings. Stateless and thread-safe.
/// </summary>
public static class TensorJson
{
    /// <summary>A tensor of <paramref name="type"/> and <paramref name="shape"/> from its elements in row-major order.</summary>
    /// <exception cref="ModelAsDataException">FeatureMismatch, naming the tensor, the element and what it needs.</exception>
    public static Tensor Read(string name, FeatureType type, long[] shape, IReadOnlyList<JsonElement> values)
    {
        if (type == FeatureType.String)
        {
            var strings = new string[values.Count];
            for (var i = 0; i < strings.Length; i++)
            {
                strings[i] = values[i].ValueKind == JsonValueKind.String ? values[i].GetString()! : throw Bad(name, type, i, values[i]);
            }

            return Tensor.OfStrings(name, shape, strings);
        }

        var size = FeatureTypes.Size(type);
        var bytes = new byte[checked(values.Count * size)];
        for (var i = 0; i < values.Count; i++)
        {
            if (!TryWrite(type, values[i], bytes.AsSpan(i * size, size)))
            {
                throw Bad(name, type, i, values[i]);
            }
        }

        return Tensor.OfBytes(name, type, shape, bytes);
    }

    /// <summary>Writes the tensor's elements as one flat JSON array, in row-major order.</summary>
    public static void WriteData(Utf8JsonWriter writer, Tensor tensor)
    {
        writer.WriteStartArray();
        if (tensor.Type == FeatureType.String)
        {
            foreach (var text in tensor.Strings!)
            {
                writer.WriteStringValue(text);
            }
        }
        else
        {
            var size = FeatureTypes.Size(tensor.Type);
            var bytes = tensor.Bytes.AsSpan();
            for (var offset = 0; offset < bytes.Length; offset += size)
            {
                WriteElement(writer, tensor.Type, bytes.Slice(offset, size));
            }
        }

        writer.WriteEndArray();
    }

    /// <summary>Writes one element, given as its little-endian bytes, as a JSON value.</summary>
    public static void WriteElement(Utf8JsonWriter writer, FeatureType type, ReadOnlySpan<byte> element)
    {
        switch (type)
        {
            case FeatureType.Float: WriteFloat(writer, BinaryPrimitives.ReadSingleLittleEndian(element)); break;
            case FeatureType.Double: WriteDouble(writer, BinaryPrimitives.ReadDoubleLittleEndian(element)); break;
            case FeatureType.Float16:
                var half = BinaryPrimitives.ReadHalfLittleEndian(element);
                if (Half.IsFinite(half))
                {
                    writer.WriteRawValue(half.ToString("R", CultureInfo.InvariantCulture));
                }
                else
                {
                    writer.WriteStringValue(Named((double)half));
                }

                break;
            case FeatureType.Bfloat16: WriteFloat(writer, FromBfloat16(BinaryPrimitives.ReadUInt16LittleEndian(element))); break;
            case FeatureType.Int8: writer.WriteNumberValue((sbyte)element[0]); break;
            case FeatureType.Int16: writer.WriteNumberValue(BinaryPrimitives.ReadInt16LittleEndian(element)); break;
            case FeatureType.Int32: writer.WriteNumberValue(BinaryPrimitives.ReadInt32LittleEndian(element)); break;
            case FeatureType.Int64: writer.WriteNumberValue(BinaryPrimitives.ReadInt64LittleEndian(element)); break;
            case FeatureType.Uint8: writer.WriteNumberValue(element[0]); break;
            case FeatureType.Uint16: writer.WriteNumberValue(BinaryPrimitives.ReadUInt16LittleEndian(element)); break;
            case FeatureType.Uint32: writer.WriteNumberValue(BinaryPrimitives.ReadUInt32LittleEndian(element)); break;
            case FeatureType.Uint64: writer.WriteNumberValue(BinaryPrimitives.ReadUInt64LittleEndian(element)); break;
            case FeatureType.Bool: writer.WriteBooleanValue(element[0] != 0); break;
            default: throw new ArgumentOutOfRangeException(nameof(type), type, "Strings are not laid out in bytes.");
        }
    }

    /// <summary>Parses one JSON value into an element's little-endian bytes; false when it is not a value of the type.</summary>
    public static bool TryWrite(FeatureType type, JsonElement value, Span<byte> destination)
    {
        if (type == FeatureType.Bool)
        {
            switch (value.ValueKind)
            {
                case JsonValueKind.True: destination[0] = 1; return true;
                case JsonValueKind.False: destination[0] = 0; return true;
                case JsonValueKind.Number when value.TryGetByte(out var bit) && bit <= 1: destination[0] = bit; return true;
                default: return false;
            }
        }

        if (value.ValueKind == JsonValueKind.String)
        {
            return TryWriteNamed(type, value.GetString()!, destination);
        }

        if (value.ValueKind != JsonValueKind.Number)
        {
            return false;
        }

        switch (type)
        {
            case FeatureType.Float when TryFloat(value, out var f): BinaryPrimitives.WriteSingleLittleEndian(destination, f); return true;
            case FeatureType.Double when value.TryGetDouble(out var d): BinaryPrimitives.WriteDoubleLittleEndian(destination, d); return true;
            case FeatureType.Float16 when Half.TryParse(value.GetRawText(), NumberStyles.Float, CultureInfo.InvariantCulture, out var h):
                BinaryPrimitives.WriteHalfLittleEndian(destination, h);
                return true;
            case FeatureType.Bfloat16 when TryFloat(value, out var b): BinaryPrimitives.WriteUInt16LittleEndian(destination, ToBfloat16(b)); return true;
            case FeatureType.Int8 when value.TryGetSByte(out var i8): destination[0] = (byte)i8; return true;
            case FeatureType.Int16 when value.TryGetInt16(out var i16): BinaryPrimitives.WriteInt16LittleEndian(destination, i16); return true;
            case FeatureType.Int32 when value.TryGetInt32(out var i32): BinaryPrimitives.WriteInt32LittleEndian(destination, i32); return true;
            case FeatureType.Int64 when value.TryGetInt64(out var i64): BinaryPrimitives.WriteInt64LittleEndian(destination, i64); return true;
            case FeatureType.Uint8 when value.TryGetByte(out var u8): destination[0] = u8; return true;
            case FeatureType.Uint16 when value.TryGetUInt16(out var u16): BinaryPrimitives.WriteUInt16LittleEndian(destination, u16); return true;
            case FeatureType.Uint32 when value.TryGetUInt32(out var u32): BinaryPrimitives.WriteUInt32LittleEndian(destination, u32); return true;
            case FeatureType.Uint64 when value.TryGetUInt64(out var u64): BinaryPrimitives.WriteUInt64LittleEndian(destination, u64); return true;
            default: return false;
        }
    }

    /// <summary>bfloat16 is the upper half of a float: rounded to nearest, ties to even; NaN stays a (quiet) NaN.</summary>
    public static ushort ToBfloat16(float value)
    {
        var bits = BitConverter.SingleToUInt32Bits(value);
        if (float.IsNaN(value))
        {
            return (ushort)((bits >> 16) | 0x0040);
        }

        return (ushort)((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16);
    }

    public static float FromBfloat16(ushort bits) => BitConverter.UInt32BitsToSingle((uint)bits << 16);

    private static bool TryFloat(JsonElement value, out float result)
    {
        // Parsed from the text straight to single precision (never through double, which could round twice).
        return float.TryParse(value.GetRawText(), NumberStyles.Float, CultureInfo.InvariantCulture, out result);
    }

    private static bool TryWriteNamed(FeatureType type, string text, Span<byte> destination)
    {
        double? named = text.ToLowerInvariant() switch
        {
            "nan" => double.NaN,
            "infinity" or "inf" or "+infinity" or "+inf" => double.PositiveInfinity,
            "-infinity" or "-inf" => double.NegativeInfinity,
            _ => null,
        };
        switch (type)
        {
            case FeatureType.Float when named is { } f: BinaryPrimitives.WriteSingleLittleEndian(destination, (float)f); return true;
            case FeatureType.Double when named is { } d: BinaryPrimitives.WriteDoubleLittleEndian(destination, d); return true;
            case FeatureType.Float16 when named is { } h: BinaryPrimitives.WriteHalfLittleEndian(destination, (Half)h); return true;
            case FeatureType.Bfloat16 when named is { } b: BinaryPrimitives.WriteUInt16LittleEndian(destination, ToBfloat16((float)b)); return true;
            default: return false;
        }
    }

    private static void WriteFloat(Utf8JsonWriter writer, float value)
    {
        if (float.IsFinite(value))
        {
            writer.WriteNumberValue(value);
        }
        else
        {
            writer.WriteStringValue(Named(value));
        }
    }

    private static void WriteDouble(Utf8JsonWriter writer, double value)
    {
        if (double.IsFinite(value))
        {
            writer.WriteNumberValue(value);
        }
        else
        {
            writer.WriteStringValue(Named(value));
        }
    }

    private static string Named(double value) => double.IsNaN(value) ? "NaN" : value > 0 ? "Infinity" : "-Infinity";

    private static ModelAsDataException Bad(string name, FeatureType type, int index, JsonElement value)
    {
        var text = value.GetRawText();
        text = text.Length <= 40 ? text : text[..40] + "…";
        var wanted = type switch
        {
            FeatureType.String => "a JSON string",
            FeatureType.Bool => "true or false",
            FeatureType.Float or FeatureType.Double or FeatureType.Float16 or FeatureType.Bfloat16 => "a number (or \"NaN\", \"Infinity\", \"-Infinity\")",
            _ => $"a whole number within the range of {FeatureTypes.Name(type)}",
        };
        return new ModelAsDataException(ErrorCode.FeatureMismatch,
            $"Input '{name}' element {index.ToString(CultureInfo.InvariantCulture)} is {text}; a {FeatureTypes.Name(type)} element takes {wanted}.");
    }
}

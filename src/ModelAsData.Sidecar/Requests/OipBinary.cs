using System.Buffers;
using System.Buffers.Binary;
using System.Text;
using ModelAsData.Core.Onnx;
using ModelAsData.Core.Onnx.Tensors;

namespace ModelAsData.Sidecar.Requests;

/// <summary>
/// Tensors in the binary tensor data extension's layout: elements little-endian, row-major, without padding (ONNX
/// Runtime's own layout, so numbers are taken and given without conversion); BOOL one byte; each BYTES element a
/// 4-byte little-endian length followed by its UTF-8 bytes.
/// </summary>
internal static class OipBinary
{
    public static Tensor Read(string name, FeatureType type, long[] shape, ReadOnlySpan<byte> bytes)
    {
        var count = Tensor.ElementsOf(shape);
        if (type != FeatureType.String)
        {
            var size = count * FeatureTypes.Size(type);
            return bytes.Length == size
                ? Tensor.OfBytes(name, type, shape, bytes.ToArray())
                : throw OipRequest.Bad($"Input '{name}' has shape {Tensor.Describe(shape)} of {OipDataType.Of(type)}, so {size} byte(s) of binary data, but its binary_data_size is {bytes.Length}.");
        }

        var strings = new string[count];
        var offset = 0;
        for (var i = 0; i < count; i++)
        {
            if (bytes.Length - offset < 4 || BinaryPrimitives.ReadUInt32LittleEndian(bytes[offset..]) is var length && length > bytes.Length - offset - 4)
            {
                throw OipRequest.Bad($"Input '{name}' element {i}: its binary data ends before the element's 4-byte length and bytes.");
            }

            strings[i] = Encoding.UTF8.GetString(bytes.Slice(offset + 4, (int)length));
            offset += 4 + (int)length;
        }

        return offset == bytes.Length
            ? Tensor.OfStrings(name, shape, strings)
            : throw OipRequest.Bad($"Input '{name}' has {count} BYTES element(s) in {offset} byte(s), but its binary_data_size is {bytes.Length}.");
    }

    /// <summary>The size in bytes of the tensor's binary form.</summary>
    public static int SizeOf(Tensor tensor) => tensor.Type == FeatureType.String
        ? tensor.Strings!.Sum(text => 4 + Encoding.UTF8.GetByteCount(text))
        : tensor.Bytes.Length;

    /// <summary>Appends the tensor's binary form; returns its size in bytes.</summary>
    public static int Write(IBufferWriter<byte> into, Tensor tensor)
    {
        if (tensor.Type != FeatureType.String)
        {
            into.Write(tensor.Bytes);
            return tensor.Bytes.Length;
        }

        var total = 0;
        foreach (var text in tensor.Strings!)
        {
            var length = Encoding.UTF8.GetByteCount(text);
            var span = into.GetSpan(4 + length);
            BinaryPrimitives.WriteUInt32LittleEndian(span, (uint)length);
            Encoding.UTF8.GetBytes(text, span[4..]);
            into.Advance(4 + length);
            total += 4 + length;
        }

        return total;
    }
}

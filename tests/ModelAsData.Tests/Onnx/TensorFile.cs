using ModelAsData.Core.Onnx.Proto;

namespace ModelAsData.Tests.Onnx;

/// <summary>Reads the ONNX model zoo's test vectors: one TensorProto of floats per .pb file.</summary>
internal static class TensorFile
{
    public static float[] ReadFloats(string path)
    {
        var tensor = TensorProto.Parser.ParseFrom(File.ReadAllBytes(path));
        if (tensor.FloatData.Count > 0)
        {
            return tensor.FloatData.ToArray();
        }

        var raw = tensor.RawData.Span;
        return System.Runtime.InteropServices.MemoryMarshal.Cast<byte, float>(raw).ToArray();
    }
}

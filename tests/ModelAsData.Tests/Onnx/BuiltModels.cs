using Google.Protobuf;
using ModelAsData.Core.Onnx.Proto;

namespace ModelAsData.Tests.Onnx;

/// <summary>
/// Small ONNX graphs built in the test, for the element types and shapes no public model in the set has (double,
/// int32 and bool inputs; several outputs). Each is a real model: ONNX Runtime loads and runs it.
/// </summary>
internal static class BuiltModels
{
    public const int Float = 1;
    public const int Uint8 = 2;
    public const int Int8 = 3;
    public const int Uint16 = 4;
    public const int Int16 = 5;
    public const int Int32 = 6;
    public const int Int64 = 7;
    public const int String = 8;
    public const int Bool = 9;
    public const int Float16 = 10;
    public const int Double = 11;
    public const int Uint32 = 12;
    public const int Uint64 = 13;
    public const int Bfloat16 = 16;

    /// <summary>A model whose every input is passed through Identity to an output of its own.</summary>
    public static byte[] Identity(params (string Name, int ElementType, long?[] Shape)[] inputs)
    {
        var graph = new GraphProto { Name = "identity" };
        foreach (var (name, type, shape) in inputs)
        {
            graph.Input.Add(Value(name, type, shape));
            graph.Output.Add(Value(name + "_out", type, shape));
            graph.Node.Add(new NodeProto { OpType = "Identity", Input = { name }, Output = { name + "_out" }, Domain = "" });
        }

        var model = new ModelProto { IrVersion = 8, Graph = graph };
        model.OpsetImport.Add(new OperatorSetIdProto { Domain = "", Version = 17 });
        return model.ToByteArray();
    }

    private static ValueInfoProto Value(string name, int type, long?[] shape)
    {
        var tensorShape = new TensorShapeProto();
        foreach (var dim in shape)
        {
            tensorShape.Dim.Add(dim is { } value ? new TensorShapeProto.Types.Dimension { DimValue = value } : new TensorShapeProto.Types.Dimension { DimParam = "N" });
        }

        return new ValueInfoProto { Name = name, Type = new TypeProto { TensorType = new TypeProto.Types.Tensor { ElemType = type, Shape = tensorShape } } };
    }
}

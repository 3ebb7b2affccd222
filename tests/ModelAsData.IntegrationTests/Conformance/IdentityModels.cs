using Google.Protobuf;
using ModelAsData.Core.Onnx.Proto;

namespace ModelAsData.IntegrationTests.Conformance;

/// <summary>Real ONNX models built in the test: every input passed through Identity to an output named <c>{input}_out</c>.</summary>
internal static class IdentityModels
{
    /// <param name="inputs">Name, ONNX element type number, dimensions (null: dynamic).</param>
    public static byte[] Build(params (string Name, int ElementType, long?[] Shape)[] inputs)
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
        for (var d = 0; d < shape.Length; d++)
        {
            tensorShape.Dim.Add(shape[d] is { } value ? new TensorShapeProto.Types.Dimension { DimValue = value } : new TensorShapeProto.Types.Dimension { DimParam = $"d{d}" });
        }

        return new ValueInfoProto { Name = name, Type = new TypeProto { TensorType = new TypeProto.Types.Tensor { ElemType = type, Shape = tensorShape } } };
    }
}

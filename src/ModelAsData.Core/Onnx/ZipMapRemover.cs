using Google.Protobuf;
using ModelAsData.Core.Onnx.Proto;

namespace ModelAsData.Core.Onnx;

/// <summary>
/// Removes scikit-learn's ZipMap nodes from a model before it is loaded. A ZipMap turns a float tensor of class
/// probabilities into one dictionary per row; reading those through the C# API costs ~1.8 µs a row and caps a tree
/// model at a third of its speed. Without the node, the same probabilities come out as the tensor that fed it, and
/// the class labels it carried are kept here. The tensor keeps the output's name, so callers see no difference.
/// </summary>
internal static class ZipMapRemover
{
    private const int OnnxFloat = 1;

    /// <summary>The rewritten model, or the original bytes when there is no ZipMap that feeds a graph output.</summary>
    /// <returns>The bytes to load, and the class labels of each rewritten output, by output name.</returns>
    public static (byte[] Bytes, IReadOnlyDictionary<string, IReadOnlyList<string>> Classes) Rewrite(byte[] model) =>
        Rewrite(model, ExternalTensors.Outline(model));

    /// <summary>Whether the model's outline has a ZipMap node, which only a rewrite of the whole model can remove.</summary>
    public static bool HasZipMap(Outline.ModelProto? outline) => outline?.Graph is { } graph && graph.Node.Any(n => n.OpType == "ZipMap");

    /// <summary>
    /// As <see cref="Rewrite(byte[])"/>, parsing the model whole only when its outline has a ZipMap: a large model
    /// (which has none) is not copied here.
    /// </summary>
    public static (byte[] Bytes, IReadOnlyDictionary<string, IReadOnlyList<string>> Classes) Rewrite(byte[] model, Outline.ModelProto? outline)
    {
        var none = new Dictionary<string, IReadOnlyList<string>>();
        if (!HasZipMap(outline))
        {
            return (model, none);
        }

        ModelProto proto;
        try
        {
            proto = ModelProto.Parser.ParseFrom(model);
        }
        catch (InvalidProtocolBufferException)
        {
            return (model, none); // Let ONNX Runtime give its own reason.
        }

        var graph = proto.Graph;
        if (graph is null)
        {
            return (model, none);
        }

        var classes = new Dictionary<string, IReadOnlyList<string>>();
        foreach (var zipMap in graph.Node.Where(IsZipMap).ToList())
        {
            if (TryRemove(graph, zipMap) is { } labels)
            {
                classes[zipMap.Output[0]] = labels;
            }
        }

        return classes.Count == 0 ? (model, none) : (proto.ToByteArray(), classes);
    }

    private static bool IsZipMap(NodeProto node) =>
        node.OpType == "ZipMap" && node.Input.Count == 1 && node.Output.Count == 1;

    private static List<string>? TryRemove(GraphProto graph, NodeProto zipMap)
    {
        var probabilities = zipMap.Input[0];
        var output = zipMap.Output[0];
        var graphOutput = graph.Output.FirstOrDefault(o => o.Name == output);
        var producer = graph.Node.FirstOrDefault(n => n.Output.Contains(probabilities));
        var labels = ClassLabels(zipMap);
        var otherUsers = graph.Node.Any(n => n != zipMap && n.Input.Contains(output));
        if (graphOutput is null || producer is null || labels is null || otherUsers
            || graph.Output.Any(o => o.Name == probabilities))
        {
            return null;
        }

        // The tensor takes the dictionary output's name: rename it where it is made and wherever it is read.
        graph.Node.Remove(zipMap);
        foreach (var node in graph.Node)
        {
            Rename(node.Output, probabilities, output);
            Rename(node.Input, probabilities, output);
        }

        var shape = new TensorShapeProto();
        shape.Dim.Add(new TensorShapeProto.Types.Dimension { DimParam = "N" });
        shape.Dim.Add(new TensorShapeProto.Types.Dimension { DimValue = labels.Count });
        graphOutput.Type = new TypeProto
        {
            TensorType = new TypeProto.Types.Tensor { ElemType = OnnxFloat, Shape = shape },
        };
        return labels;
    }

    private static List<string>? ClassLabels(NodeProto zipMap)
    {
        foreach (var attribute in zipMap.Attribute)
        {
            if (attribute.Name == "classlabels_int64s" && attribute.Ints.Count > 0)
            {
                return attribute.Ints.Select(i => i.ToString(System.Globalization.CultureInfo.InvariantCulture)).ToList();
            }

            if (attribute.Name == "classlabels_strings" && attribute.Strings.Count > 0)
            {
                return attribute.Strings.Select(s => s.ToStringUtf8()).ToList();
            }
        }

        return null;
    }

    private static void Rename(Google.Protobuf.Collections.RepeatedField<string> names, string from, string to)
    {
        for (var i = 0; i < names.Count; i++)
        {
            if (names[i] == from)
            {
                names[i] = to;
            }
        }
    }
}

using Google.Protobuf;
using ModelAsData.Core.Onnx.Outline;

namespace ModelAsData.Core.Onnx;

/// <summary>
/// Refuses models whose tensors keep their data outside the model (<c>data_location = EXTERNAL</c>). A model is
/// stored and loaded as one blob; ONNX Runtime would read the file such a tensor names from the loading process's
/// own file system (relative to its working directory), so a pushed model could read any file the sidecar may read
/// into its weights, or fail on one machine and not another. Every TensorProto is checked: initializers, sparse
/// initializers, node attributes (Constant's value and the like), subgraphs (If, Loop, Scan), functions and training
/// graphs. The walk reads the model's outline (onnx_outline.proto): its weights are skipped, never copied.
/// </summary>
internal static class ExternalTensors
{
    /// <summary>Throws <see cref="ErrorCode.InvalidModel"/> naming the first tensor with external data.</summary>
    /// <param name="model">The model's outline (<see cref="Outline(byte[])"/>); null when the bytes are not a model, which ONNX Runtime then says.</param>
    public static void Refuse(ModelProto? model)
    {
        if (model is not null && Find(model) is { } tensor)
        {
            throw new ModelAsDataException(ErrorCode.InvalidModel,
                $"Tensor {tensor} keeps its data in an external file (data_location = EXTERNAL), which is refused: a model is " +
                "stored and loaded as one blob, and its weights may not come from files on the machine that loads it. Embed the data and push " +
                "that file: in Python, onnx.save_model(onnx.load(path), new_path, save_as_external_data=False).");
        }
    }

    /// <summary>The outline of a model (no tensor's data), or null when the bytes are not one.</summary>
    public static ModelProto? Outline(byte[] onnx)
    {
        try
        {
            return ModelProto.Parser.WithDiscardUnknownFields(true).ParseFrom(onnx);
        }
        catch (InvalidProtocolBufferException)
        {
            return null;
        }
    }

    /// <summary>As <see cref="Outline(byte[])"/>, read from a stream: skipped weights pass through a small buffer, never held.</summary>
    public static ModelProto? Outline(Stream onnx)
    {
        try
        {
            return ModelProto.Parser.WithDiscardUnknownFields(true).ParseFrom(onnx);
        }
        catch (InvalidProtocolBufferException)
        {
            return null;
        }
    }

    /// <summary>As <see cref="Find(ModelProto)"/>, on a model's bytes.</summary>
    internal static string? Find(byte[] onnx) => Outline(onnx) is { } model ? Find(model) : null;

    /// <summary>A description of the first tensor with external data ("'name'", or where an unnamed one is), or null.</summary>
    internal static string? Find(ModelProto model)
    {
        var graphs = new List<GraphProto>();
        if (model.Graph is { } main)
        {
            graphs.Add(main);
        }

        foreach (var training in model.TrainingInfo)
        {
            graphs.AddRange(new[] { training.Initialization, training.Algorithm }.Where(g => g is not null));
        }

        foreach (var graph in graphs)
        {
            if (Find(graph) is { } found)
            {
                return found;
            }
        }

        return model.Functions.SelectMany(f => f.Node).Select(Find).FirstOrDefault(found => found is not null);
    }

    private static string? Find(GraphProto graph)
    {
        foreach (var tensor in graph.Initializer)
        {
            if (IsExternal(tensor))
            {
                return Describe(tensor, $"an initializer of graph '{graph.Name}'");
            }
        }

        foreach (var sparse in graph.SparseInitializer)
        {
            if (Find(sparse, $"a sparse initializer of graph '{graph.Name}'") is { } found)
            {
                return found;
            }
        }

        return graph.Node.Select(Find).FirstOrDefault(found => found is not null);
    }

    private static string? Find(NodeProto node)
    {
        foreach (var attribute in node.Attribute)
        {
            var where = $"attribute '{attribute.Name}' of node '{node.Name}' ({node.OpType})";
            var tensors = attribute.Tensors.AsEnumerable();
            if (attribute.T is { } single)
            {
                tensors = tensors.Prepend(single);
            }

            if (tensors.FirstOrDefault(IsExternal) is { } external)
            {
                return Describe(external, where);
            }

            var sparse = attribute.SparseTensors.AsEnumerable();
            if (attribute.SparseTensor is { } one)
            {
                sparse = sparse.Prepend(one);
            }

            if (sparse.Select(s => Find(s, where)).FirstOrDefault(found => found is not null) is { } inSparse)
            {
                return inSparse;
            }

            var subgraphs = attribute.Graphs.AsEnumerable();
            if (attribute.G is { } graph)
            {
                subgraphs = subgraphs.Prepend(graph);
            }

            if (subgraphs.Select(Find).FirstOrDefault(found => found is not null) is { } inSubgraph)
            {
                return inSubgraph;
            }
        }

        return null;
    }

    private static string? Find(SparseTensorProto sparse, string where) =>
        new[] { sparse.Values, sparse.Indices }.FirstOrDefault(t => t is not null && IsExternal(t)) is { } external ? Describe(external, where) : null;

    // ONNX Runtime reads external data only when data_location says so; a tensor that lists external_data entries
    // names a file all the same, so it is refused too.
    private static bool IsExternal(TensorProto tensor) =>
        tensor.DataLocation == TensorProto.Types.DataLocation.External || tensor.ExternalData.Count > 0;

    private static string Describe(TensorProto tensor, string where)
    {
        var location = tensor.ExternalData.FirstOrDefault(e => e.Key == "location")?.Value;
        var file = location is null ? "" : $", file '{location}'";
        return string.IsNullOrEmpty(tensor.Name) ? $"({where}{file})" : $"'{tensor.Name}' ({where}{file})";
    }
}

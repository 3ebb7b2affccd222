using System.Globalization;
using System.Text;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;

namespace ModelAsData.Core.Onnx;

/// <summary>Reads a loaded session's inputs and outputs and decides which columns its predictions decode into.</summary>
internal static class SignatureReader
{
    /// <summary>Outputs up to this wide get a column per value; wider ones one array column.</summary>
    private const int MaxColumnsPerOutput = 32;

    /// <summary>
    /// Every tensor input and output of any element type and shape is accepted: a model that rows of a table cannot
    /// feed (a dynamic dimension after the first, an element type the tabular path does not read) or whose outputs
    /// cannot be decoded into columns gets no columns and <see cref="ModelSignature.TensorOnly"/> says why; it scores
    /// over the Open Inference Protocol. Non-tensor inputs and outputs (sequence, map, optional) are refused here,
    /// naming them, because no door can carry them.
    /// </summary>
    public static (ModelSignature Signature, int MaxBatch) Read(InferenceSession session, IReadOnlyDictionary<string, IReadOnlyList<string>> classes)
    {
        var notTabular = new List<string>();
        var inputs = session.InputNames.Select(name => ReadInput(name, session.InputMetadata[name], notTabular)).ToList();
        var outputs = session.OutputNames.Select(name => ReadOutput(name, session.OutputMetadata[name], classes.GetValueOrDefault(name))).ToList();
        var maxBatch = inputs.Any(i => i.Shape.Length == 0 || i.Shape[0] > 0) ? 1 : int.MaxValue;
        var columns = DecodeColumns(outputs, notTabular);
        if (notTabular.Count > 0)
        {
            var reason = string.Join("; ", notTabular);
            return (new ModelSignature(inputs, outputs, []) { TensorOnly = reason }, maxBatch);
        }

        return (new ModelSignature(inputs, outputs, columns), maxBatch);
    }

    private static InputSpec ReadInput(string name, NodeMetadata metadata, List<string> notTabular)
    {
        if (!metadata.IsTensor)
        {
            throw Unsupported($"input '{name}' is {NonTensor(metadata)}; ModelAsData feeds tensor inputs only (any element type, any shape)");
        }

        var shape = metadata.Dimensions.Select(d => (long)d).ToArray();
        var type = ToFeatureType(metadata.ElementDataType, $"input '{name}'");
        if (!FeatureTypes.IsTabular(type))
        {
            notTabular.Add($"input '{name}' holds {FeatureTypes.Name(type)} values, which columns do not feed yet");
        }

        if (shape.Skip(1).Any(d => d < 0))
        {
            notTabular.Add($"input '{name}' has shape [{string.Join(',', shape)}], a dynamic dimension after the first");
            return new InputSpec(name, type, shape, 0);
        }

        // A fixed first dimension other than 1 is not a batch: the whole tensor is one row.
        var width = shape.Length == 0 ? 1 : shape[0] > 1 ? Product(shape) : Product(shape.AsSpan(1));
        return new InputSpec(name, type, shape, checked((int)width));
    }

    private static OutputSpec ReadOutput(string name, NodeMetadata metadata, IReadOnlyList<string>? classes)
    {
        if (!metadata.IsTensor)
        {
            throw Unsupported($"output '{name}' is {NonTensor(metadata)}; ModelAsData returns tensor outputs only (a ZipMap is removed when it makes a graph output, not when it feeds another node)");
        }

        var shape = metadata.Dimensions.Select(d => (long)d).ToArray();
        var type = ToFeatureType(metadata.ElementDataType, $"output '{name}'");
        int? width = shape.Length <= 1 ? 1 : shape.Skip(1).Any(d => d < 0) ? null : checked((int)Product(shape.AsSpan(1)));
        if (classes is not null)
        {
            width = classes.Count;
        }

        return new OutputSpec(name, type, shape, width, classes);
    }

    private static List<OutputColumn> DecodeColumns(List<OutputSpec> outputs, List<string> notTabular)
    {
        var columns = new List<OutputColumn>();
        var used = new HashSet<string>(StringComparer.Ordinal);
        for (var o = 0; o < outputs.Count; o++)
        {
            var output = outputs[o];
            if (!FeatureTypes.IsTabular(output.Type))
            {
                notTabular.Add($"output '{output.Name}' holds {FeatureTypes.Name(output.Type)} values, which columns do not hold yet");
                continue;
            }

            var stem = ColumnStem(output.Name);
            var scalarType = output.Type switch
            {
                FeatureType.String => ColumnType.Text,
                FeatureType.Float or FeatureType.Double => ColumnType.Real,
                _ => ColumnType.Integer,
            };
            if (output.Width == 1)
            {
                columns.Add(new OutputColumn(Unique(stem, used), scalarType, o, 0, null));
            }
            else if (output.Width is { } width && width <= MaxColumnsPerOutput && output.Type != FeatureType.String)
            {
                for (var i = 0; i < width; i++)
                {
                    var label = output.Classes?[i];
                    var suffix = label is null ? i.ToString(CultureInfo.InvariantCulture) : Identifier(label);
                    columns.Add(new OutputColumn(Unique($"{stem}_{suffix}", used), scalarType, o, i, label));
                }
            }
            else if (output.Type is FeatureType.Float or FeatureType.Double)
            {
                columns.Add(new OutputColumn(Unique(stem, used), ColumnType.RealArray, o, -1, null));
            }
            else
            {
                notTabular.Add($"output '{output.Name}' holds {FeatureTypes.Name(output.Type)} values of shape [{string.Join(',', output.Shape)}]; columns hold one value per row or numeric arrays");
            }
        }

        return columns;
    }

    /// <summary>skl2onnx names outputs <c>output_label</c>, <c>output_probability</c>: analysts want <c>label</c>, <c>probability</c>.</summary>
    private static string ColumnStem(string outputName)
    {
        var stem = Identifier(outputName);
        return stem.StartsWith("output_", StringComparison.Ordinal) && stem.Length > 7 ? stem[7..] : stem;
    }

    /// <summary>A lower-case identifier made of a label: letters and digits kept, anything else '_'.</summary>
    internal static string Identifier(string text)
    {
        var builder = new StringBuilder(text.Length);
        foreach (var c in text.ToLowerInvariant())
        {
            builder.Append(c is (>= 'a' and <= 'z') or (>= '0' and <= '9') ? c : '_');
        }

        var identifier = builder.ToString().Trim('_');
        return identifier.Length == 0 ? "value" : identifier;
    }

    private static string Unique(string name, HashSet<string> used)
    {
        if (name.Length > 0 && char.IsAsciiDigit(name[0]))
        {
            name = "c_" + name;
        }

        name = name.Length > Names.MaxLength ? name[..Names.MaxLength] : name;
        var candidate = name;
        for (var n = 2; !used.Add(candidate); n++)
        {
            candidate = $"{name}_{n}";
        }

        return candidate;
    }

    private static FeatureType ToFeatureType(TensorElementType type, string what) =>
        FeatureTypes.FromOnnxRuntime(type)
        ?? throw Unsupported($"{what} has element type {type}; supported: {string.Join(", ", Enum.GetValues<FeatureType>().Select(FeatureTypes.Name))}");

    /// <summary>Names a non-tensor value for messages: <c>a sequence of float tensors</c>, <c>an optional int32 tensor</c>, <c>a map</c>.</summary>
    private static string NonTensor(NodeMetadata metadata)
    {
        var kind = Kind(metadata);
        return (kind[0] is 'o' or 'a' or 'e' or 'i' or 'u' ? "an " : "a ") + kind;
    }

    private static string Kind(NodeMetadata metadata)
    {
        try
        {
            return metadata.OnnxValueType switch
            {
                OnnxValueType.ONNX_TYPE_TENSOR => $"{metadata.ElementDataType.ToString().ToLowerInvariant()} tensor",
                OnnxValueType.ONNX_TYPE_SEQUENCE => $"sequence of {Kind(metadata.AsSequenceMetadata().ElementMeta)}s",
                OnnxValueType.ONNX_TYPE_OPTIONAL => $"optional {Kind(metadata.AsOptionalMetadata().ElementMeta)}",
                OnnxValueType.ONNX_TYPE_MAP => "map",
                OnnxValueType.ONNX_TYPE_SPARSETENSOR => "sparse tensor",
                var other => other.ToString(),
            };
        }
        catch (OnnxRuntimeException)
        {
            return metadata.OnnxValueType.ToString();
        }
    }

    private static long Product(ReadOnlySpan<long> dims)
    {
        long product = 1;
        foreach (var d in dims)
        {
            product *= d;
        }

        return product;
    }

    private static ModelAsDataException Unsupported(string what) =>
        new(ErrorCode.InvalidModel, $"The model loads, but ModelAsData cannot score it: {what}.");
}

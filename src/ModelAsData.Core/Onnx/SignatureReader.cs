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
    /// Every tensor input and output of any element type and shape is accepted. Rows of a table feed every input
    /// (from scalar columns, or from one array column per row), and every output decodes into columns (uint64 too, as
    /// <see cref="ColumnType.Uint64"/>). <see cref="ModelSignature.TensorOnly"/> is no longer set here: only versions
    /// pushed before uint64 columns existed carry it. Non-tensor inputs and outputs (sequence, map, optional) are
    /// refused here, naming them, because no door can carry them.
    /// </summary>
    public static (ModelSignature Signature, int MaxBatch) Read(InferenceSession session, IReadOnlyDictionary<string, IReadOnlyList<string>> classes)
    {
        var inputs = session.InputNames.Select(name => ReadInput(name, session.InputMetadata[name])).ToList();
        var outputs = session.OutputNames.Select(name => ReadOutput(name, session.OutputMetadata[name], classes.GetValueOrDefault(name))).ToList();
        var maxBatch = inputs.Any(i => i.Shape.Length == 0 || i.Shape[0] > 0) ? 1 : int.MaxValue;
        return (new ModelSignature(inputs, outputs, DecodeColumns(outputs)), maxBatch);
    }

    private static InputSpec ReadInput(string name, NodeMetadata metadata)
    {
        if (!metadata.IsTensor)
        {
            throw Unsupported($"input '{name}' is {NonTensor(metadata)}; ModelAsData feeds tensor inputs only (any element type, any shape)");
        }

        var shape = metadata.Dimensions.Select(d => (long)d).ToArray();
        var type = ToFeatureType(metadata.ElementDataType, $"input '{name}'");
        // Every element type and shape feeds from rows: fixed shapes from scalar columns or one array column, a
        // dynamic dimension after the first (token ids [N, T]) from one array column per row.
        var spec = new InputSpec(name, type, shape, 0);
        return spec.IsRagged ? spec : spec with { Width = checked((int)Product(spec.RowShape)) };
    }

    private static OutputSpec ReadOutput(string name, NodeMetadata metadata, IReadOnlyList<string>? classes)
    {
        if (!metadata.IsTensor)
        {
            throw Unsupported($"output '{name}' is {NonTensor(metadata)}; ModelAsData returns tensor outputs only (a ZipMap is removed when it makes a graph output, not when it feeds another node)");
        }

        var shape = metadata.Dimensions.Select(d => (long)d).ToArray();
        var type = ToFeatureType(metadata.ElementDataType, $"output '{name}'");
        // As for inputs: a first dimension of -1 or 1 counts rows; a fixed one of another size makes the tensor one row.
        var row = shape.Length > 0 && shape[0] is < 0 or 1 ? shape[1..] : shape;
        int? width = row.Any(d => d < 0) ? null : checked((int)Product(row));
        if (classes is not null)
        {
            width = classes.Count;
        }

        return new OutputSpec(name, type, shape, width, classes);
    }

    private static List<OutputColumn> DecodeColumns(List<OutputSpec> outputs)
    {
        var columns = new List<OutputColumn>();
        var used = new HashSet<string>(StringComparer.Ordinal);
        for (var o = 0; o < outputs.Count; o++)
        {
            var output = outputs[o];
            var stem = ColumnStem(output.Name);
            var storage = FeatureTypes.Storage(output.Type);
            var scalarType = storage switch
            {
                FeatureType.String => ColumnType.Text,
                FeatureType.Uint64 => ColumnType.Uint64,
                FeatureType.Float or FeatureType.Double => ColumnType.Real,
                _ => ColumnType.Integer,
            };
            if (output.Width == 1)
            {
                columns.Add(new OutputColumn(Unique(stem, used), scalarType, o, 0, null));
            }
            else if (output.Width is { } width && width <= MaxColumnsPerOutput && output.Type != FeatureType.String && RowRank(output) <= 1)
            {
                for (var i = 0; i < width; i++)
                {
                    var label = output.Classes?[i];
                    var suffix = label is null ? i.ToString(CultureInfo.InvariantCulture) : Identifier(label);
                    columns.Add(new OutputColumn(Unique($"{stem}_{suffix}", used), scalarType, o, i, label));
                }
            }
            else
            {
                // A tensor per row, in an array column of its element type (with the row's dimensions).
                var arrayType = storage switch
                {
                    FeatureType.Float => ColumnType.RealArray,
                    FeatureType.Double => ColumnType.DoubleArray,
                    FeatureType.Bool => ColumnType.BooleanArray,
                    FeatureType.String => ColumnType.TextArray,
                    FeatureType.Uint64 => ColumnType.Uint64Array,
                    _ => ColumnType.IntegerArray,
                };
                columns.Add(new OutputColumn(Unique(stem, used), arrayType, o, -1, null));
            }
        }

        return columns;
    }

    private static int RowRank(OutputSpec output) => output.Shape.Length > 0 && output.Shape[0] is < 0 or 1 ? output.Shape.Length - 1 : output.Shape.Length;

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

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
            throw Unsupported($"input '{name}' is a {metadata.OnnxValueType}; only tensor inputs can be fed from columns");
        }

        var shape = metadata.Dimensions.Select(d => (long)d).ToArray();
        var type = ToFeatureType(metadata.ElementDataType, $"input '{name}'");
        if (shape.Skip(1).Any(d => d < 0))
        {
            throw Unsupported($"input '{name}' has shape [{string.Join(',', shape)}]; only the first (batch) dimension may be dynamic");
        }

        // A fixed first dimension other than 1 is not a batch: the whole tensor is one row.
        var width = shape.Length == 0 ? 1 : shape[0] > 1 ? Product(shape) : Product(shape.AsSpan(1));
        return new InputSpec(name, type, shape, checked((int)width));
    }

    private static OutputSpec ReadOutput(string name, NodeMetadata metadata, IReadOnlyList<string>? classes)
    {
        if (!metadata.IsTensor)
        {
            throw Unsupported($"output '{name}' is a {metadata.OnnxValueType}, not a tensor (a ZipMap that feeds another node cannot be removed)");
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

    private static List<OutputColumn> DecodeColumns(List<OutputSpec> outputs)
    {
        var columns = new List<OutputColumn>();
        var used = new HashSet<string>(StringComparer.Ordinal);
        for (var o = 0; o < outputs.Count; o++)
        {
            var output = outputs[o];
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
                throw Unsupported($"output '{output.Name}' holds {output.Type} values of shape [{string.Join(',', output.Shape)}]; only one value per row or numeric arrays can be decoded");
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

    private static FeatureType ToFeatureType(TensorElementType type, string what) => type switch
    {
        TensorElementType.Float => FeatureType.Float,
        TensorElementType.Double => FeatureType.Double,
        TensorElementType.Int64 => FeatureType.Int64,
        TensorElementType.Int32 => FeatureType.Int32,
        TensorElementType.String => FeatureType.String,
        TensorElementType.Bool => FeatureType.Bool,
        _ => throw Unsupported($"{what} has element type {type}; supported: float, double, int64, int32, string, bool"),
    };

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

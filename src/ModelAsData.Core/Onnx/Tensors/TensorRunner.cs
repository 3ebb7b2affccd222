using System.Runtime.InteropServices;
using Microsoft.ML.OnnxRuntime;

namespace ModelAsData.Core.Onnx.Tensors;

/// <summary>
/// Runs a model on whole tensors: checks them against the model's inputs (name, element type, rank, fixed
/// dimensions), hands their bytes to ONNX Runtime without a copy (pinned for the call), and reads every output back
/// with the element type and shape ONNX Runtime gives it. Thread-safe: every call has its own values and options.
/// </summary>
internal static class TensorRunner
{
    public static IReadOnlyList<Tensor> Run(OnnxModel model, string label, IReadOnlyList<Tensor> inputs, IReadOnlyList<string>? outputs, CancellationToken cancellationToken)
    {
        var signature = model.Signature;
        Check(signature, label, inputs);
        var outputNames = outputs ?? signature.Outputs.Select(o => o.Name).ToList();
        foreach (var name in outputNames)
        {
            if (!signature.Outputs.Any(o => o.Name == name))
            {
                throw Mismatch($"Model '{label}' has no output '{name}'; its outputs: {string.Join(", ", signature.Outputs.Select(o => $"'{o.Name}'"))}.");
            }
        }

        var pins = new GCHandle[inputs.Count];
        var values = new OrtValue[inputs.Count];
        using var runOptions = new RunOptions();
        using var registration = cancellationToken.CanBeCanceled
            ? cancellationToken.Register(static o => ((RunOptions)o!).Terminate = true, runOptions)
            : default;
        try
        {
            for (var i = 0; i < inputs.Count; i++)
            {
                values[i] = ToOrtValue(inputs[i], ref pins[i]);
            }

            using var results = model.Session.Run(runOptions, inputs.Select(t => t.Name).ToList(), values, outputNames);
            var tensors = new List<Tensor>(results.Count);
            for (var o = 0; o < results.Count; o++)
            {
                tensors.Add(Read(outputNames[o], results[o]));
            }

            return tensors;
        }
        catch (OnnxRuntimeException e) when (cancellationToken.IsCancellationRequested)
        {
            throw new OperationCanceledException("Scoring was cancelled.", e, cancellationToken);
        }
        catch (OnnxRuntimeException e)
        {
            throw Mismatch($"ONNX Runtime could not run model '{label}' on {string.Join(", ", inputs)}: {e.Message}", e);
        }
        finally
        {
            foreach (var value in values)
            {
                value?.Dispose();
            }

            foreach (var pin in pins)
            {
                if (pin.IsAllocated)
                {
                    pin.Free();
                }
            }
        }
    }

    /// <summary>Every input given once, by its own name, with its element type, rank and fixed dimensions.</summary>
    private static void Check(ModelSignature signature, string label, IReadOnlyList<Tensor> inputs)
    {
        var seen = new HashSet<string>(StringComparer.Ordinal);
        foreach (var tensor in inputs)
        {
            var spec = signature.Inputs.FirstOrDefault(i => i.Name == tensor.Name)
                ?? throw Mismatch($"Model '{label}' has no input '{tensor.Name}'; it takes {signature.DescribeInputs()}.");
            if (!seen.Add(tensor.Name))
            {
                throw Mismatch($"Input '{tensor.Name}' is given twice.");
            }

            if (spec.Type != tensor.Type)
            {
                throw Mismatch($"Input '{tensor.Name}' holds {FeatureTypes.Name(tensor.Type)} values; model '{label}' takes {ModelSignature.Describe(spec)}.");
            }

            // ONNX Runtime reports no dimensions both for a scalar and for an input of unknown shape: it checks those itself.
            var fits = spec.Shape.Length == 0 || spec.Shape.Length == tensor.Shape.Count;
            for (var d = 0; fits && d < spec.Shape.Length && d < tensor.Shape.Count; d++)
            {
                fits = spec.Shape[d] < 0 || spec.Shape[d] == tensor.Shape[d];
            }

            if (!fits)
            {
                throw Mismatch($"Input '{tensor.Name}' has shape {Tensor.Describe(tensor.Shape)}; model '{label}' takes {Tensor.Describe(spec.Shape)} (-1: any size) ({ModelSignature.Describe(spec)}).");
            }
        }

        var missing = signature.Inputs.Where(i => !seen.Contains(i.Name)).Select(i => $"'{i.Name}'").ToList();
        if (missing.Count > 0)
        {
            throw Mismatch($"Model '{label}' also needs input {string.Join(", ", missing)}; it takes {signature.DescribeInputs()}.");
        }
    }

    private static OrtValue ToOrtValue(Tensor tensor, ref GCHandle pin)
    {
        var shape = tensor.Shape.ToArray();
        if (tensor.Type == FeatureType.String)
        {
            // String tensors live in native memory: each element is copied in.
            var value = OrtValue.CreateTensorWithEmptyStrings(OrtAllocator.DefaultInstance, shape);
            for (var i = 0; i < tensor.Strings!.Length; i++)
            {
                value.StringTensorSetElementAt(tensor.Strings[i].AsSpan(), i);
            }

            return value;
        }

        pin = GCHandle.Alloc(tensor.Bytes, GCHandleType.Pinned);
        return OrtValue.CreateTensorValueWithData(OrtMemoryInfo.DefaultInstance, FeatureTypes.ToOnnxRuntime(tensor.Type), shape,
            pin.AddrOfPinnedObject(), tensor.Bytes.LongLength);
    }

    private static Tensor Read(string name, OrtValue value)
    {
        if (!value.IsTensor)
        {
            throw Mismatch($"Output '{name}' came back as a {value.OnnxType}, not a tensor.");
        }

        var info = value.GetTensorTypeAndShape();
        var type = FeatureTypes.FromOnnxRuntime(info.ElementDataType)
            ?? throw Mismatch($"Output '{name}' holds {info.ElementDataType} values, which ModelAsData does not carry.");
        var shape = info.Shape;
        return type == FeatureType.String
            ? Tensor.OfStrings(name, shape, value.GetStringTensorAsArray())
            : Tensor.OfBytes(name, type, shape, value.GetTensorMutableRawData().ToArray());
    }

    private static ModelAsDataException Mismatch(string message, Exception? inner = null) => new(ErrorCode.FeatureMismatch, message, inner);
}

using Microsoft.ML.OnnxRuntime;

namespace ModelAsData.Bench;

/// <summary>
/// The reference a user would write by hand: ONNX Runtime's OrtValue API on preallocated, pinned buffers, no
/// database, no decoding beyond reading the output spans. Measured on the same model bytes ModelAsData loads
/// (ZipMap removed), so the ratio shows what the store adds, not what the rewrite saves.
/// </summary>
internal sealed class RawOnnxRuntime : IDisposable
{
    private readonly InferenceSession _session;
    private readonly string[] _inputNames;
    private readonly string[] _outputNames;

    public RawOnnxRuntime(byte[] model)
    {
        _session = OpenSession(model);
        _inputNames = [.. _session.InputNames];
        _outputNames = [.. _session.OutputNames];
    }

    /// <summary>Scores every row in calls of <paramref name="batch"/> rows; returns a checksum so the work cannot be skipped.</summary>
    public double Score(float[][] rows, int batch)
    {
        var width = rows[0].Length;
        var input = new float[batch * width];
        var labels = new long[batch];
        var probabilities = new float[batch * 3];
        using var runOptions = new RunOptions();
        double checksum = 0;
        OrtValue? inputValue = null, labelValue = null, probabilityValue = null;
        var valueRows = -1;
        try
        {
            for (var start = 0; start < rows.Length; start += batch)
            {
                var n = Math.Min(batch, rows.Length - start);
                if (n != valueRows)
                {
                    inputValue?.Dispose();
                    labelValue?.Dispose();
                    probabilityValue?.Dispose();
                    inputValue = OrtValue.CreateTensorValueFromMemory(OrtMemoryInfo.DefaultInstance, input.AsMemory(0, n * width), [n, width]);
                    labelValue = OrtValue.CreateTensorValueFromMemory(OrtMemoryInfo.DefaultInstance, labels.AsMemory(0, n), [n]);
                    probabilityValue = OrtValue.CreateTensorValueFromMemory(OrtMemoryInfo.DefaultInstance, probabilities.AsMemory(0, n * 3), [n, 3]);
                    valueRows = n;
                }

                for (var r = 0; r < n; r++)
                {
                    rows[start + r].CopyTo(input, r * width);
                }

                _session.Run(runOptions, _inputNames, [inputValue!], _outputNames, [labelValue!, probabilityValue!]);
                for (var r = 0; r < n; r++)
                {
                    checksum += labels[r] + probabilities[r * 3];
                }
            }
        }
        finally
        {
            inputValue?.Dispose();
            labelValue?.Dispose();
            probabilityValue?.Dispose();
        }

        return checksum;
    }

    /// <summary>The raw references' session: one intra-op thread, no spinning (the store also turns spinning off).</summary>
    public static InferenceSession OpenSession(byte[] model)
    {
        using var options = new SessionOptions { IntraOpNumThreads = 1, InterOpNumThreads = 1 };
        options.AddSessionConfigEntry("session.intra_op.allow_spinning", "0");
        return new InferenceSession(model, options);
    }

    public void Dispose() => _session.Dispose();
}

using System.Globalization;
using System.Runtime.InteropServices;
using Microsoft.ML.OnnxRuntime;
using ModelAsData.Core.Onnx.Tensors;

namespace ModelAsData.Core.Onnx;

/// <summary>
/// Scores rows with one <see cref="OnnxModel"/>, reusing its input and output buffers from call to call. Fill a batch
/// row by row (<see cref="BeginRow"/>, the <c>Set</c> methods by feature slot, then <see cref="EndRow"/> or
/// <see cref="CancelRow"/>), call <see cref="Score"/>, and read the results until the next <see cref="Clear"/>.
/// Not thread-safe: one scorer per thread. Does not own the model.
/// </summary>
/// <remarks>
/// A slot is a feature's position across all inputs in model order: an iris model with input <c>[N,4]</c> has slots
/// 0–3; the titanic pipeline's five <c>[N,1]</c> inputs are slots 0–4. An input can instead be set whole from one
/// array per row (<see cref="SetTensor"/>: an image, token ids); an input with a dynamic dimension after the batch
/// (<see cref="InputSpec.IsRagged"/>) has no slots and is only set so. Rows of such inputs may differ in size: the
/// batch is scored in groups of rows of the same sizes, one ONNX Runtime call per group, never padded (padding
/// changes what a model computes unless it takes a mask), and each row's outputs keep their own dimensions. A group
/// ONNX Runtime fails on does not fail the batch: its rows are scored in halves down to the row, and each row that
/// still fails alone gets its own error (<see cref="ScoredBatch.Error"/>), as a row whose values do not fit does. A
/// batch of fixed-size rows is one call; only when that call fails are its rows split so, as one group.
/// </remarks>
public sealed partial class ModelScorer : IDisposable
{
    private readonly InputBuffer[] _inputs;
    private readonly OutputBuffer[] _outputs;
    private readonly int[] _slotInput;
    private readonly int[] _slotOffset;
    private readonly string[] _inputNames;
    private readonly string[] _outputNames;
    private readonly OrtValue[] _inputValues;
    private readonly OrtValue[] _outputValues;
    private readonly RunOptions _runOptions = new();
    private readonly int[] _raggedInputs;
    private string?[] _rowErrors;
    private bool _preallocate;
    private bool _rowOpen;

    internal ModelScorer(OnnxModel model, int capacity)
    {
        Model = model;
        Capacity = capacity;
        var signature = model.Signature;
        _inputs = signature.Inputs.Select(i => new InputBuffer(i, capacity)).ToArray();
        _outputs = signature.Outputs.Select(o => new OutputBuffer(o, capacity)).ToArray();
        _inputNames = signature.Inputs.Select(i => i.Name).ToArray();
        _outputNames = signature.Outputs.Select(o => o.Name).ToArray();
        _inputValues = new OrtValue[_inputs.Length];
        _outputValues = new OrtValue[_outputs.Length];
        _raggedInputs = Enumerable.Range(0, _inputs.Length).Where(i => _inputs[i].IsRagged).ToArray();
        _rowErrors = _raggedInputs.Length == 0 ? [] : new string?[capacity];
        _preallocate = _outputs.All(o => o.CanPreallocate) && _raggedInputs.Length == 0;
        _slotInput = new int[signature.FeatureCount];
        _slotOffset = new int[signature.FeatureCount];
        for (int input = 0, slot = 0; input < _inputs.Length; input++)
        {
            for (var offset = 0; offset < _inputs[input].Spec.Width; offset++, slot++)
            {
                _slotInput[slot] = input;
                _slotOffset[slot] = offset;
            }
        }
    }

    public OnnxModel Model { get; }

    public int Capacity { get; }

    /// <summary>Rows in the batch so far (ended rows only).</summary>
    public int Count { get; private set; }

    public bool IsFull => Count == Capacity;

    /// <summary>Feature values one row takes: the number of slots.</summary>
    public int SlotCount => _slotInput.Length;

    /// <summary>Starts a row; returns its index in the batch.</summary>
    public int BeginRow()
    {
        if (IsFull)
        {
            throw new InvalidOperationException($"The batch is full ({Capacity} rows): score it and clear it first.");
        }

        _rowOpen = true;
        return Count;
    }

    public void EndRow()
    {
        _rowOpen = false;
        Count++;
    }

    /// <summary>Drops the row being built, for example after a value could not be converted.</summary>
    public void CancelRow() => _rowOpen = false;

    public void Clear() => Count = 0;

    /// <summary>The fast path for float inputs; the slot's input must be float.</summary>
    public void SetFloat(int slot, float value) => Input(slot, out var i).SetFloat(i, value);

    /// <summary>Sets a slot of the open row; returns why the value cannot feed the model, or null.</summary>
    public string? Set(int slot, double value) => Input(slot, out var i).Set(i, value);

    /// <inheritdoc cref="Set(int, double)"/>
    public string? Set(int slot, long value) => Input(slot, out var i).Set(i, value);

    /// <inheritdoc cref="Set(int, double)"/>
    public string? Set(int slot, string value) => Input(slot, out var i).Set(i, value);

    /// <inheritdoc cref="Set(int, double)"/>
    public string? Set(int slot, bool value) => Input(slot, out var i).Set(i, value);

    /// <summary>Sets a slot from a value of any supported CLR type; null is refused.</summary>
    public string? Set(int slot, object? value) => value switch
    {
        null => $"null cannot feed {SlotName(slot)}",
        double d => Set(slot, d),
        float f => Set(slot, (double)f),
        long l => Set(slot, l),
        int n => Set(slot, (long)n),
        short s => Set(slot, (long)s),
        byte b => Set(slot, (long)b),
        decimal m => Input(slot, out var i).Set(i, m), // exact for whole numbers: uint64 and int64 past 2^53
        ulong u => Input(slot, out var i).Set(i, (decimal)u),
        string t => Set(slot, t),
        bool flag => Set(slot, flag),
        _ => $"a {value.GetType().Name} value cannot feed {SlotName(slot)}",
    };

    /// <summary>Names a slot for messages: <c>input 'float_input'[2] (float)</c>.</summary>
    public string SlotName(int slot)
    {
        var spec = _inputs[_slotInput[slot]].Spec;
        var position = spec.Width == 1 ? string.Empty : $"[{_slotOffset[slot]}]";
        return $"input '{spec.Name}'{position} ({spec.Type.ToString().ToLowerInvariant()})";
    }

    /// <summary>
    /// Scores the ended rows. Rows ONNX Runtime fails on (an id past an embedding, a text longer than the model's
    /// positions) get an error each (<see cref="ScoredBatch.Error"/>) and the others are scored, in a batch of
    /// fixed-size rows as in a grouped one; cancellation stops the native call.
    /// </summary>
    public ScoredBatch Score(CancellationToken cancellationToken = default)
    {
        if (_rowOpen)
        {
            throw new InvalidOperationException("A row is still open: end or cancel it before scoring.");
        }

        FailedCount = 0;
        if (Count == 0)
        {
            return new ScoredBatch(this, 0);
        }

        using var registration = cancellationToken.CanBeCanceled
            ? cancellationToken.Register(static o => ((RunOptions)o!).Terminate = true, _runOptions)
            : default;
        try
        {
            Run();
        }
        catch (OnnxRuntimeException e) when (cancellationToken.IsCancellationRequested)
        {
            _runOptions.Terminate = false;
            throw new OperationCanceledException("Scoring was cancelled.", e, cancellationToken);
        }
        catch (OnnxRuntimeException e)
        {
            throw new ModelAsDataException(ErrorCode.FeatureMismatch,
                $"ONNX Runtime could not score {Count} row(s) with inputs {Model.Signature.DescribeInputs()}: {e.Message}", e);
        }

        return new ScoredBatch(this, Count);
    }

    internal OutputBuffer Output(int index) => _outputs[index];

    /// <summary>Rows of the last call that ONNX Runtime failed on (see <see cref="RowError"/>).</summary>
    internal int FailedCount { get; private set; }

    /// <summary>Why ONNX Runtime failed on a row of the last call, or null when it was scored.</summary>
    internal string? RowError(int row) => FailedCount == 0 ? null : _rowErrors[row];

    public void Dispose()
    {
        foreach (var input in _inputs)
        {
            input.Dispose();
        }

        foreach (var output in _outputs)
        {
            output.Dispose();
        }

        _runOptions.Dispose();
    }

    private void Run()
    {
        if (_raggedInputs.Length > 0)
        {
            RunGroups();
            return;
        }

        try
        {
            RunWhole();
        }
        catch (OnnxRuntimeException e) when (!_runOptions.Terminate)
        {
            // One row ONNX Runtime cannot score must not cost the batch's other rows theirs: off the hot path, only
            // once the one call for the whole batch has failed, the rows are scored in halves down to the row.
            SplitRows(e);
        }
    }

    /// <summary>The one call for the whole batch, over the buffers themselves (ONNX Runtime writes into the outputs' arrays when it can).</summary>
    private void RunWhole()
    {
        for (var i = 0; i < _inputs.Length; i++)
        {
            _inputValues[i] = _inputs[i].ToOrtValue(Count);
        }

        try
        {
            if (_preallocate)
            {
                try
                {
                    for (var o = 0; o < _outputs.Length; o++)
                    {
                        _outputValues[o] = _outputs[o].ToOrtValue(Count);
                    }

                    Model.Session.Run(_runOptions, _inputNames, _inputValues, _outputNames, _outputValues);
                    return;
                }
                catch (OnnxRuntimeException) when (!_runOptions.Terminate)
                {
                    // A model whose declared output shapes differ from what it makes: let ONNX Runtime allocate
                    // (below). Kept for the next batches only if that succeeds: a row ONNX Runtime cannot score
                    // fails both ways, and must not cost later batches the preallocated outputs.
                }
            }

            using var results = Model.Session.Run(_runOptions, _inputNames, _inputValues, _outputNames);
            _preallocate = false;
            for (var o = 0; o < _outputs.Length; o++)
            {
                _outputs[o].CopyFrom(results[o], Count);
            }
        }
        finally
        {
            DisposeStringInputs();
        }
    }

    private void DisposeStringInputs()
    {
        for (var i = 0; i < _inputs.Length; i++)
        {
            if (_inputs[i].Spec.Type == FeatureType.String)
            {
                _inputValues[i].Dispose();
            }
        }
    }

    private InputBuffer Input(int slot, out int index)
    {
        var input = _inputs[_slotInput[slot]];
        index = (Count * input.Spec.Width) + _slotOffset[slot];
        return input;
    }
}

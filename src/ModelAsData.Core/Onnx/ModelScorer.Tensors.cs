using System.Globalization;
using System.Runtime.InteropServices;
using ModelAsData.Core.Onnx.Tensors;

namespace ModelAsData.Core.Onnx;

/// <summary>Whole tensors per row (<see cref="SetTensor"/>) and the grouped call for rows of different sizes.</summary>
public sealed partial class ModelScorer
{
    /// <summary>The index of an input by its name; -1 when the model has none of that name.</summary>
    public int InputIndex(string name)
    {
        for (var i = 0; i < _inputs.Length; i++)
        {
            if (_inputs[i].Spec.Name == name)
            {
                return i;
            }
        }

        return -1;
    }

    /// <summary>
    /// Sets input <paramref name="input"/> of the open row from one array of any rank (row-major): a flat array of
    /// the row's element count, or an array of the row's dimensions (<see cref="InputSpec.RowShape"/>; dimensions of
    /// size 1 may be left out or added: a 28×28 array feeds <c>[N,1,28,28]</c>). For a dynamic dimension the array
    /// gives the size: a flat array when the row has one dynamic dimension, else an array of the row's rank. Returns
    /// why the array cannot feed the input (its size, its dimensions or an element), or null.
    /// </summary>
    /// <param name="dims">The dimensions of <paramref name="values"/> when it is a flat array of a tensor of another rank (nested JSON); null: its own.</param>
    public string? SetTensor(int input, Array values, long[]? dims = null)
    {
        ArgumentNullException.ThrowIfNull(values);
        var buffer = _inputs[input];
        var spec = buffer.Spec;
        if (dims is null)
        {
            dims = new long[values.Rank];
            for (var d = 0; d < dims.Length; d++)
            {
                dims[d] = values.GetLength(d);
            }
        }

        if (FitRow(spec, dims, values.Length) is not { } rowDims)
        {
            return $"input '{spec.Name}' takes {DescribeRow(spec)} per row; the array has {(dims.Length == 1 ? $"{values.Length.ToString(CultureInfo.InvariantCulture)} value(s)" : $"dimensions {Tensor.Describe(dims)}")}";
        }

        var start = buffer.IsRagged ? buffer.BeginRagged(Count, rowDims) : Count * spec.Width;
        return buffer.CopyFrom(start, values);
    }

    /// <summary>How a row of the input is written in messages: <c>[1, 28, 28] (784 values)</c>, <c>[-1] (any length)</c>.</summary>
    public static string DescribeRow(InputSpec spec) => spec.IsRagged
        ? $"{Tensor.Describe(spec.RowShape)} (-1: any size)"
        : $"{Tensor.Describe(spec.RowShape)} ({spec.Width.ToString(CultureInfo.InvariantCulture)} value(s))";

    /// <summary>The dimensions an array of <paramref name="dims"/> gives one row of the input, or null when it does not fit.</summary>
    private static long[]? FitRow(InputSpec spec, long[] dims, long length)
    {
        var shape = spec.RowShape;
        if (!spec.IsRagged)
        {
            var fits = length == spec.Width && (dims.Length == 1 || WithoutOnes(dims).SequenceEqual(WithoutOnes(shape)));
            return fits ? shape : null;
        }

        if (dims.Length == shape.Length && dims.Zip(shape).All(p => p.Second < 0 || p.First == p.Second))
        {
            return dims;
        }

        // A flat array for a row with one dynamic dimension: the other dimensions give its size.
        if (dims.Length == 1 && shape.Count(d => d < 0) == 1)
        {
            var known = shape.Where(d => d >= 0).Aggregate(1L, (a, d) => a * d);
            if (known > 0 && length % known == 0)
            {
                return shape.Select(d => d < 0 ? length / known : d).ToArray();
            }
        }

        return null;
    }

    private static IEnumerable<long> WithoutOnes(long[] dims) => dims.Where(d => d != 1);

    /// <summary>
    /// Scores the batch in groups of rows whose ragged inputs have the same dimensions: one ONNX Runtime call per
    /// group, on copies of the group's rows; each output keeps every row's start and dimensions. A group ONNX Runtime
    /// fails on is split (<see cref="RunOrSplit"/>), so one row it cannot score costs no other row its prediction.
    /// </summary>
    private void RunGroups()
    {
        var groups = new Dictionary<string, List<int>>(StringComparer.Ordinal);
        for (var row = 0; row < Count; row++)
        {
            _rowErrors[row] = null;
            var key = string.Join(';', _raggedInputs.Select(i => string.Join(',', _inputs[i].RowDims(row))));
            if (!groups.TryGetValue(key, out var rows))
            {
                groups[key] = rows = [];
            }

            rows.Add(row);
        }

        foreach (var output in _outputs)
        {
            output.BeginGroups(Count);
        }

        foreach (var rows in groups.Values)
        {
            RunOrSplit(CollectionsMarshal.AsSpan(rows));
        }
    }

    /// <summary>
    /// Runs one group; when ONNX Runtime fails on it (a token id past the embedding, a sequence longer than the
    /// model's positions), runs each half again, down to single rows, and gives each row that fails alone ONNX
    /// Runtime's reason as its error. A group of n rows with k failing rows costs at most about 2k·log2(n) calls,
    /// and nothing on the path of a group that succeeds. A cancelled run is not a row's failure: it propagates.
    /// </summary>
    private void RunOrSplit(ReadOnlySpan<int> rows)
    {
        try
        {
            RunGroup(rows);
        }
        catch (Microsoft.ML.OnnxRuntime.OnnxRuntimeException e) when (!_runOptions.Terminate)
        {
            if (rows.Length > 1)
            {
                RunOrSplit(rows[..(rows.Length / 2)]);
                RunOrSplit(rows[(rows.Length / 2)..]);
                return;
            }

            FailRow(rows[0], e);
        }
    }

    /// <summary>
    /// After the one call for a batch of fixed-size rows failed: the rows are scored as one group split in halves
    /// down to the row (<see cref="RunOrSplit"/>), so each row that fails alone gets its own error. A batch of one row
    /// (a model with a fixed batch of 1 scores so) takes the failed call's reason without calling again.
    /// </summary>
    private void SplitRows(Microsoft.ML.OnnxRuntime.OnnxRuntimeException failure)
    {
        if (_rowErrors.Length < Capacity)
        {
            _rowErrors = new string?[Capacity];
        }

        Array.Clear(_rowErrors, 0, Count);
        foreach (var output in _outputs)
        {
            output.BeginGroups(Count);
        }

        if (Count == 1)
        {
            FailRow(0, failure);
            return;
        }

        var rows = new int[Count];
        for (var row = 0; row < rows.Length; row++)
        {
            rows[row] = row;
        }

        RunOrSplit(rows);
    }

    private void FailRow(int row, Microsoft.ML.OnnxRuntime.OnnxRuntimeException e)
    {
        _rowErrors[row] = _raggedInputs.Length == 0
            ? $"ONNX Runtime could not score this row: {e.Message}"
            : $"ONNX Runtime could not score this row ({DescribeRowDims(row)}): {e.Message}";
        FailedCount++;
        foreach (var output in _outputs)
        {
            output.FailRow(row);
        }
    }

    /// <summary>The row's dimensions of its ragged inputs, for its error: <c>input 'ids' [600]</c>.</summary>
    private string DescribeRowDims(int row) =>
        string.Join(", ", _raggedInputs.Select(i => $"input '{_inputs[i].Spec.Name}' {Tensor.Describe(_inputs[i].RowDims(row))}"));

    private void RunGroup(ReadOnlySpan<int> rows)
    {
        var values = new Microsoft.ML.OnnxRuntime.OrtValue[_inputs.Length];
        var pins = new GCHandle[_inputs.Length];
        try
        {
            for (var i = 0; i < _inputs.Length; i++)
            {
                var input = _inputs[i];
                var dims = input.IsRagged ? input.RowDims(rows[0]) : input.Spec.RowShape;
                long[] shape = input.Spec.IsBatched ? [rows.Length, .. dims] : dims;
                values[i] = input.Gather(rows, shape, ref pins[i]);
            }

            using var results = Model.Session.Run(_runOptions, _inputNames, values, _outputNames);
            for (var o = 0; o < _outputs.Length; o++)
            {
                _outputs[o].AddGroup(results[o], rows);
            }
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
}

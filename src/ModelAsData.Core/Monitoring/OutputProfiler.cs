using ModelAsData.Core.Onnx;

namespace ModelAsData.Core.Monitoring;

/// <summary>
/// Profiles a version's outputs over baseline rows: scores them in batches and feeds each decoded column (except
/// whole-array ones) into a <see cref="ProfileBuilder"/>. A row whose features cannot be converted counts as null in
/// every output. Not thread-safe; owns the scorer it creates.
/// </summary>
public sealed class OutputProfiler : IDisposable
{
    private readonly ModelScorer _scorer;
    private readonly IReadOnlyList<OutputColumn> _columns;
    private readonly ProfileBuilder?[] _builders;
    private long _failed;

    public OutputProfiler(OnnxModel model)
    {
        _scorer = model.CreateScorer(model.PreferredBatchSize);
        _columns = model.Signature.Columns;
        _builders = _columns.Select(c => c.Type == ColumnType.RealArray ? null : new ProfileBuilder(c.Name, ProfileKind.Output)).ToArray();
    }

    /// <summary>One baseline row's values, slot by slot (as <see cref="ModelScorer.Set(int, object?)"/> takes them).</summary>
    public void Add(IReadOnlyList<object?> slots, CancellationToken cancellationToken = default)
    {
        _scorer.BeginRow();
        for (var slot = 0; slot < slots.Count; slot++)
        {
            if (_scorer.Set(slot, slots[slot] is DBNull ? null : slots[slot]) is not null)
            {
                _scorer.CancelRow();
                _failed++;
                return;
            }
        }

        _scorer.EndRow();
        if (_scorer.IsFull)
        {
            Flush(cancellationToken);
        }
    }

    /// <summary>The outputs' profiles, edges for output columns from <paramref name="bins"/> where named.</summary>
    public IReadOnlyList<ColumnProfile> Build(IReadOnlyDictionary<string, double[]> bins, CancellationToken cancellationToken = default)
    {
        Flush(cancellationToken);
        var profiles = new List<ColumnProfile>();
        foreach (var builder in _builders)
        {
            if (builder is null)
            {
                continue;
            }

            for (var i = 0; i < _failed; i++)
            {
                builder.AddNull();
            }

            profiles.Add(builder.Build(bins.GetValueOrDefault(builder.Column)));
        }

        return profiles;
    }

    public void Dispose() => _scorer.Dispose();

    private void Flush(CancellationToken cancellationToken)
    {
        if (_scorer.Count == 0)
        {
            return;
        }

        var scored = _scorer.Score(cancellationToken);
        for (var row = 0; row < scored.Count; row++)
        {
            if (scored.Error(row) is not null)
            {
                _failed++; // ONNX Runtime failed on this row alone: null in every output, as a row that does not convert
                continue;
            }

            for (var c = 0; c < _builders.Length; c++)
            {
                switch (_builders[c] is null ? (ColumnType?)null : _columns[c].Type)
                {
                    case ColumnType.Text: _builders[c]!.Add((string)scored.GetValue(row, c)); break;
                    // uint64 binned as a double: drift bins need no more than its 53 leading bits.
                    case ColumnType.Integer or ColumnType.Uint64: _builders[c]!.Add(scored.GetDouble(row, c), whole: true); break;
                    case ColumnType.Real: _builders[c]!.Add(scored.GetDouble(row, c), whole: false); break;
                    default: break;
                }
            }
        }

        _scorer.Clear();
    }
}

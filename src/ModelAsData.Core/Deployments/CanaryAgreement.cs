using ModelAsData.Core.Onnx;

namespace ModelAsData.Core.Deployments;

/// <summary>
/// Agreement between champion and canary (docs/DEPLOYMENTS.md, "Canary agreement"). The two serve different keys, so a
/// refresh under a canary also scores a sample of the canary's keys with the champion and keeps only the sums of
/// <see cref="CanaryAgreementSums"/>. The sample is the published sticky hash under the deployment's seed XOR
/// <see cref="Salt"/>: reproducible in SQL (<c>mad.bucket(seed # 6364136223846793005, key_text)</c>), the same keys on
/// both stores, and independent of which keys the canary serves.
/// </summary>
public static class CanaryAgreement
{
    /// <summary>The fixed salt XORed into the deployment's seed for the sample (Knuth's MMIX multiplier: any fixed odd constant would do).</summary>
    public const long Salt = 6364136223846793005;

    /// <summary>The sample's percent of canary keys when no setting changes it.</summary>
    public const double DefaultPercent = 10;

    /// <summary>Whether a canary key under this seed is also scored by the champion, at the sample's percent (0..100).</summary>
    public static bool Samples(long seed, string keyText, double percent) =>
        percent > 0 && StickyBucket.InCanary(seed ^ Salt, keyText, percent);
}

/// <summary>
/// The sums one refresh (or task) keeps of its sampled canary keys, each scored by both versions without error: rows
/// compared, rows whose label outputs (integer, uint64, text) all equal (null without a label output), and per value output
/// (real) the sum of absolute differences. The report divides them: share equal, and the mean over rows of the mean
/// over value outputs, as the shadow's agreement is computed. Tensor outputs are not compared. Not thread-safe.
/// </summary>
public sealed class CanaryAgreementSums
{
    private readonly IReadOnlyList<OutputColumn> _columns;
    private readonly bool _asReal;
    private readonly bool _hasLabels;

    /// <param name="asReal">Compare values as the 4-byte reals PostgreSQL stores (the served rows' precision); false: as doubles (SQLite's REAL).</param>
    public CanaryAgreementSums(IReadOnlyList<OutputColumn> columns, bool asReal)
    {
        _columns = columns;
        _asReal = asReal;
        _hasLabels = columns.Any(c => c.Type is ColumnType.Integer or ColumnType.Text or ColumnType.Uint64);
        Differences = columns.Where(c => c.Type == ColumnType.Real).ToDictionary(c => c.Name, _ => 0.0, StringComparer.Ordinal);
    }

    public long RowsCompared { get; private set; }

    /// <summary>Null when the table has no label output.</summary>
    public long? RowsEqual => _hasLabels ? _equal : null;

    /// <summary>Per value output, by name: the sum of absolute differences over the rows compared.</summary>
    public Dictionary<string, double> Differences { get; }

    private long _equal;

    /// <summary>Adds one key: the champion's scored row and the canary's.</summary>
    public void Add(ScoredBatch champion, int championRow, ScoredBatch canary, int canaryRow)
    {
        // Read straight from both batches: no outputs kept, nothing allocated per row (PostgreSQL's pipeline).
        var equal = true;
        for (var c = 0; c < _columns.Count; c++)
        {
            var column = _columns[c];
            switch (column.Type)
            {
                case ColumnType.Integer:
                    equal &= champion.GetLong(championRow, c) == canary.GetLong(canaryRow, c);
                    break;
                case ColumnType.Text:
                    equal &= string.Equals((string)champion.GetValue(championRow, c), (string)canary.GetValue(canaryRow, c), StringComparison.Ordinal);
                    break;
                case ColumnType.Uint64:
                    equal &= (ulong)champion.GetValue(championRow, c) == (ulong)canary.GetValue(canaryRow, c);
                    break;
                case ColumnType.Real:
                    AddDifference(column.Name, champion.GetDouble(championRow, c), canary.GetDouble(canaryRow, c));
                    break;
            }
        }

        RowsCompared++;
        _equal += equal ? 1 : 0;
    }

    /// <summary>
    /// A scored row's compared outputs, kept past its batch: integer as long, uint64 as ulong, text as string, real as double, other
    /// outputs null (SQLite's refresh keeps the champion's until the canary's pass scores the key).
    /// </summary>
    public object?[] Outputs(ScoredBatch scored, int row)
    {
        var outputs = new object?[_columns.Count];
        for (var c = 0; c < _columns.Count; c++)
        {
            outputs[c] = _columns[c].Type switch
            {
                ColumnType.Integer => scored.GetLong(row, c),
                ColumnType.Text or ColumnType.Uint64 => scored.GetValue(row, c),
                ColumnType.Real => scored.GetDouble(row, c),
                _ => null,
            };
        }

        return outputs;
    }

    /// <summary>Adds one key: the champion's outputs (<see cref="Outputs"/>) and the canary's scored row.</summary>
    public void Add(object?[] champion, ScoredBatch canary, int canaryRow)
    {
        var equal = true;
        for (var c = 0; c < _columns.Count; c++)
        {
            var column = _columns[c];
            switch (column.Type)
            {
                case ColumnType.Integer:
                    equal &= (long)champion[c]! == canary.GetLong(canaryRow, c);
                    break;
                case ColumnType.Text:
                    equal &= string.Equals((string)champion[c]!, (string)canary.GetValue(canaryRow, c), StringComparison.Ordinal);
                    break;
                case ColumnType.Uint64:
                    equal &= (ulong)champion[c]! == (ulong)canary.GetValue(canaryRow, c);
                    break;
                case ColumnType.Real:
                    AddDifference(column.Name, (double)champion[c]!, canary.GetDouble(canaryRow, c));
                    break;
            }
        }

        RowsCompared++;
        _equal += equal ? 1 : 0;
    }

    private void AddDifference(string output, double a, double b) =>
        Differences[output] += _asReal ? Math.Abs((double)(float)a - (float)b) : Math.Abs(a - b);

    /// <summary>The differences as a JSON object, by output name (mad.record_agreement's argument).</summary>
    public string DifferencesJson() => System.Text.Json.JsonSerializer.Serialize(Differences, s_json);

    // An output that is NaN or infinite is written as PostgreSQL's ::double precision reads it back ("NaN", "Infinity").
    private static readonly System.Text.Json.JsonSerializerOptions s_json = new()
    {
        NumberHandling = System.Text.Json.Serialization.JsonNumberHandling.AllowNamedFloatingPointLiterals,
    };
}

using ModelAsData.Core.Onnx;

namespace ModelAsData.Core.Monitoring;

/// <summary>A count of scored rows in one bin of one column (<see cref="Bin"/> −1: nulls).</summary>
public readonly record struct ProfileCount(string Column, ProfileKind Kind, int Bin, long Count);

/// <summary>
/// Counts scored rows into their version's baseline bins, as a door scores them, so drift never rescans a source: each
/// door (refresh, stream, online) calls it from one hook and writes <see cref="Drain"/> into the profile counts in the
/// transaction of its predictions. Columns without a baseline are not counted. Inputs and outputs are counted apart,
/// so one thread may count inputs while another counts outputs (as refresh's read and write stages do); each of the
/// two is not thread-safe on its own.
/// </summary>
public sealed class ProfileCounter
{
    private readonly Side _inputs;
    private readonly Side _outputs;

    private ProfileCounter(Side inputs, Side outputs)
    {
        _inputs = inputs;
        _outputs = outputs;
    }

    /// <summary>
    /// A counter for a door that reads <paramref name="inputColumns"/> (source columns, in the door's order) and
    /// writes <paramref name="outputColumns"/>; null when the baseline profiles none of them (nothing to count).
    /// </summary>
    public static ProfileCounter? Create(IReadOnlyCollection<ColumnProfile> baseline, IReadOnlyList<string> inputColumns, IReadOnlyList<OutputColumn> outputColumns)
    {
        var inputs = new Side(ProfileKind.Input, inputColumns.Select(c => Find(baseline, ProfileKind.Input, c)).ToArray(), null);
        var outputs = new Side(ProfileKind.Output, outputColumns.Select(c => c.Type == ColumnType.RealArray ? null : Find(baseline, ProfileKind.Output, c.Name)).ToArray(),
            outputColumns.Select(c => c.Type).ToArray());
        return inputs.Any || outputs.Any ? new ProfileCounter(inputs, outputs) : null;
    }

    /// <summary>One row's features as the PostgreSQL doors read them: per input column, null, a number, or text.</summary>
    public void CountInputs(ReadOnlySpan<bool> isNull, ReadOnlySpan<double> numbers, ReadOnlySpan<string?> texts)
    {
        var profiles = _inputs.Profiles;
        for (var i = 0; i < profiles.Length; i++)
        {
            if (profiles[i] is { } profile)
            {
                _inputs.Add(i, isNull[i] ? -1 : texts[i] is { } text ? profile.BinOf(text) : profile.BinOf(numbers[i]));
            }
        }
    }

    /// <summary>One input value as the embedded store reads it (a long, double, string, or null).</summary>
    public void CountInput(int column, object? value)
    {
        if (_inputs.Profiles[column] is { } profile)
        {
            _inputs.Add(column, value switch
            {
                null or DBNull => -1,
                string s => profile.BinOf(s),
                long l => profile.BinOf(l),
                double d => double.IsNaN(d) ? -1 : profile.BinOf(d),
                bool b => profile.BinOf(b ? 1 : 0),
                IConvertible c => profile.BinOf(c.ToDouble(System.Globalization.CultureInfo.InvariantCulture)),
                _ => -1,
            });
        }
    }

    /// <summary>One row's outputs; <paramref name="scorerRow"/> −1 (the row failed) counts every output as null.</summary>
    public void CountOutputs(ScoredBatch scored, int scorerRow)
    {
        var profiles = _outputs.Profiles;
        for (var c = 0; c < profiles.Length; c++)
        {
            if (profiles[c] is not { } profile)
            {
                continue;
            }

            _outputs.Add(c, scorerRow < 0 ? -1 : _outputs.Types![c] == ColumnType.Text ? profile.BinOf((string)scored.GetValue(scorerRow, c)) : profile.BinOf(scored.GetDouble(scorerRow, c)));
        }
    }

    /// <summary>The counts so far (only bins with rows), and starts again from zero. Call when neither side is counting.</summary>
    public IReadOnlyList<ProfileCount> Drain()
    {
        var counts = new List<ProfileCount>();
        _inputs.Drain(counts);
        _outputs.Drain(counts);
        return counts;
    }

    private static ColumnProfile? Find(IReadOnlyCollection<ColumnProfile> baseline, ProfileKind kind, string column) =>
        baseline.FirstOrDefault(p => p.Kind == kind && string.Equals(p.Column, column, StringComparison.Ordinal));

    /// <summary>The columns of one kind: their profiles (null: not counted) and counts, the null bin last.</summary>
    private sealed class Side
    {
        private readonly ProfileKind _kind;
        private readonly long[][] _counts;

        public Side(ProfileKind kind, ColumnProfile?[] profiles, ColumnType[]? types)
        {
            _kind = kind;
            Profiles = profiles;
            Types = types;
            _counts = profiles.Select(p => new long[(p?.BinCount ?? 0) + 1]).ToArray();
        }

        public ColumnProfile?[] Profiles { get; }

        public ColumnType[]? Types { get; }

        public bool Any => Profiles.Any(p => p is not null);

        public void Add(int column, int bin)
        {
            var counts = _counts[column];
            counts[bin < 0 ? counts.Length - 1 : bin]++;
        }

        public void Drain(List<ProfileCount> into)
        {
            for (var c = 0; c < Profiles.Length; c++)
            {
                if (Profiles[c] is not { } profile)
                {
                    continue;
                }

                var counts = _counts[c];
                for (var b = 0; b < counts.Length; b++)
                {
                    if (counts[b] > 0)
                    {
                        into.Add(new ProfileCount(profile.Column, _kind, b == counts.Length - 1 ? -1 : b, counts[b]));
                        counts[b] = 0;
                    }
                }
            }
        }
    }
}

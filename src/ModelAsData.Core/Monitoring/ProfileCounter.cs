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
/// A version without a baseline gets a learning counter (<see cref="Learn"/>): it keeps its first unit of work's
/// values, from which the store fits the version's first-window reference (<see cref="LearnedProfiles"/>), then
/// counts them into the reference's bins (<see cref="Adopt"/>) and counts as any other from then on.
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

    /// <summary>
    /// A counter for <paramref name="model"/>@<paramref name="version"/>, which has no baseline: it keeps the values
    /// it is given until the store adopts a reference fitted on them (the first window of traffic).
    /// </summary>
    public static ProfileCounter Learn(string model, int version, IReadOnlyList<string> inputColumns, IReadOnlyList<OutputColumn> outputColumns)
    {
        var inputs = new Side(ProfileKind.Input, new ColumnProfile?[inputColumns.Count], null)
        {
            Learners = inputColumns.Select(c => new ProfileBuilder(c, ProfileKind.Input)).ToArray(),
        };
        var outputs = new Side(ProfileKind.Output, new ColumnProfile?[outputColumns.Count], outputColumns.Select(c => c.Type).ToArray())
        {
            Learners = outputColumns.Select(c => c.Type is ColumnType.Real or ColumnType.Integer or ColumnType.Uint64 or ColumnType.Text ? new ProfileBuilder(c.Name, ProfileKind.Output) : null).ToArray(),
        };
        return new ProfileCounter(inputs, outputs) { LearningModel = model, LearningVersion = version };
    }

    /// <summary>Whether the counter still learns its version's first-window reference.</summary>
    public bool IsLearning => _inputs.Learners is not null;

    /// <summary>The model of a learning counter.</summary>
    public string? LearningModel { get; private init; }

    /// <summary>The version of a learning counter.</summary>
    public int LearningVersion { get; private init; }

    /// <summary>
    /// The profiles fitted on the values learned so far, by <see cref="ProfileBuilder"/>'s rules (10 quantile bins,
    /// or categories); a column without a value is left out. Whole numbers are told apart by value, as the door's
    /// types are not known here.
    /// </summary>
    public IReadOnlyList<ColumnProfile> LearnedProfiles()
    {
        var profiles = new List<ColumnProfile>();
        foreach (var builder in (_inputs.Learners ?? []).Concat(_outputs.Learners ?? []))
        {
            if (builder is { HasValues: true })
            {
                profiles.Add(builder.Build());
            }
        }

        return profiles;
    }

    /// <summary>Stops learning: the reference's bins are counted from now on, and the values learned are counted into them.</summary>
    public void Adopt(IReadOnlyCollection<ColumnProfile> reference)
    {
        _inputs.Adopt(reference);
        _outputs.Adopt(reference);
    }

    /// <summary>One row's features as the PostgreSQL doors read them: per input column, null, a number, or text.</summary>
    public void CountInputs(ReadOnlySpan<bool> isNull, ReadOnlySpan<double> numbers, ReadOnlySpan<string?> texts)
    {
        if (_inputs.Learners is { } learners)
        {
            for (var i = 0; i < learners.Length; i++)
            {
                if (isNull[i]) learners[i]!.AddNull();
                else if (texts[i] is { } text) learners[i]!.Add(text);
                else learners[i]!.Add(numbers[i], numbers[i] == Math.Floor(numbers[i]));
            }

            return;
        }

        // The hot path (every scored row): numeric bins counted without branches (NumericBins), counts in one flat array, no allocation.
        var side = _inputs;
        var profiles = side.Profiles;
        var bins = side.Bins;
        var counts = side.Flat;
        var offsets = side.Offsets;
        var nullSlots = side.NullSlots;
        for (var i = 0; i < profiles.Length; i++)
        {
            var profile = profiles[i];
            if (profile is null)
            {
                continue;
            }

            int slot;
            if (isNull[i])
            {
                slot = nullSlots[i];
            }
            else if (texts[i] is { } text)
            {
                var bin = profile.BinOf(text);
                slot = bin < 0 ? nullSlots[i] : offsets[i] + bin;
            }
            else
            {
                slot = offsets[i] + (bins[i] is { } b ? b.Of(numbers[i]) : profile.BinOf(numbers[i]));
            }

            counts[slot]++;
        }
    }

    /// <summary>One input value as the embedded store reads it (a long, double, string, or null).</summary>
    public void CountInput(int column, object? value)
    {
        switch (value)
        {
            case byte[]: return; // a tensor column (not profiled)
            case null or DBNull: CountNullInput(column); return;
            case string s: CountInput(column, s); return;
            case long l: CountInput(column, l); return;
            case double d: CountInput(column, d); return;
            case bool b: CountInput(column, b ? 1L : 0L); return;
        }

        if (column >= _inputs.Profiles.Length)
        {
            return;
        }

        if (_inputs.Learners is { } learners)
        {
            if (value is IConvertible c) learners[column]!.Add(c.ToDouble(System.Globalization.CultureInfo.InvariantCulture), false);
            else learners[column]!.AddNull();
            return;
        }

        if (_inputs.Profiles[column] is { } profile)
        {
            _inputs.Add(column, value is IConvertible c ? profile.BinOf(c.ToDouble(System.Globalization.CultureInfo.InvariantCulture)) : -1);
        }
    }

    // The typed inputs below are the embedded refresh's hot path: it reads each source value once, typed, for the model
    // and counts that same value here (no box, no second read of the column). Each counts as CountInput(object) would.

    /// <summary>A REAL input value (see <see cref="CountInput(int, object?)"/>).</summary>
    public void CountInput(int column, double value)
    {
        if (column >= _inputs.Profiles.Length)
        {
            return;
        }

        if (_inputs.Learners is { } learners)
        {
            learners[column]!.Add(value, false);
        }
        else if (_inputs.Profiles[column] is { } profile)
        {
            _inputs.Add(column, double.IsNaN(value) ? -1 : _inputs.Bins[column] is { } bins ? bins.Of(value) : profile.BinOf(value));
        }
    }

    /// <summary>An INTEGER input value (see <see cref="CountInput(int, object?)"/>).</summary>
    public void CountInput(int column, long value)
    {
        if (column >= _inputs.Profiles.Length)
        {
            return;
        }

        if (_inputs.Learners is { } learners)
        {
            learners[column]!.Add(value, true);
        }
        else if (_inputs.Profiles[column] is { } profile)
        {
            _inputs.Add(column, _inputs.Bins[column] is { } bins ? bins.Of(value) : profile.BinOf(value));
        }
    }

    /// <summary>A TEXT input value (see <see cref="CountInput(int, object?)"/>).</summary>
    public void CountInput(int column, string value)
    {
        if (column >= _inputs.Profiles.Length)
        {
            return;
        }

        if (_inputs.Learners is { } learners)
        {
            learners[column]!.Add(value);
        }
        else if (_inputs.Profiles[column] is { } profile)
        {
            _inputs.Add(column, profile.BinOf(value));
        }
    }

    /// <summary>A NULL input value (see <see cref="CountInput(int, object?)"/>).</summary>
    public void CountNullInput(int column)
    {
        if (column >= _inputs.Profiles.Length)
        {
            return;
        }

        if (_inputs.Learners is { } learners)
        {
            learners[column]!.AddNull();
        }
        else if (_inputs.Profiles[column] is not null)
        {
            _inputs.Add(column, -1);
        }
    }

    /// <summary>One row's outputs; <paramref name="scorerRow"/> −1 (the row failed) counts every output as null.</summary>
    public void CountOutputs(ScoredBatch scored, int scorerRow)
    {
        if (_outputs.Learners is { } learners)
        {
            for (var c = 0; c < learners.Length; c++)
            {
                if (learners[c] is not { } learner) continue;
                if (scorerRow < 0) learner.AddNull();
                else if (_outputs.Types![c] == ColumnType.Text) learner.Add((string)scored.GetValue(scorerRow, c));
                else learner.Add(scored.GetDouble(scorerRow, c), _outputs.Types![c] is ColumnType.Integer or ColumnType.Uint64);
            }

            return;
        }

        var side = _outputs;
        var profiles = side.Profiles;
        var bins = side.Bins;
        var types = side.Types!;
        var counts = side.Flat;
        var offsets = side.Offsets;
        var nullSlots = side.NullSlots;
        for (var c = 0; c < profiles.Length; c++)
        {
            var profile = profiles[c];
            if (profile is null)
            {
                continue;
            }

            int slot;
            if (scorerRow < 0)
            {
                slot = nullSlots[c];
            }
            else if (types[c] == ColumnType.Text)
            {
                var bin = profile.BinOf((string)scored.GetValue(scorerRow, c));
                slot = bin < 0 ? nullSlots[c] : offsets[c] + bin;
            }
            else
            {
                var value = scored.GetDouble(scorerRow, c);
                slot = offsets[c] + (bins[c] is { } b ? b.Of(value) : profile.BinOf(value));
            }

            counts[slot]++;
        }
    }

    /// <summary>
    /// One output value as an online answer holds it (a double, long, string, or null: the request failed), for the
    /// output <paramref name="column"/> of the counter's output columns. A learning counter keeps it (a whole number
    /// told apart by value, as the online answer's JSON does not say the column's type).
    /// </summary>
    public void CountOutput(int column, object? value)
    {
        if (_outputs.Learners is { } learners)
        {
            if (column < learners.Length && learners[column] is { } learner)
            {
                switch (value)
                {
                    case string s: learner.Add(s); break;
                    case long l: learner.Add(l, true); break;
                    case bool b: learner.Add(b ? 1 : 0, true); break;
                    case double d when !double.IsNaN(d): learner.Add(d, d == Math.Floor(d)); break;
                    default: learner.AddNull(); break;
                }
            }

            return;
        }

        if (column >= _outputs.Profiles.Length || _outputs.Profiles[column] is not { } profile)
        {
            return;
        }

        _outputs.Add(column, value switch
        {
            null => -1,
            string s => profile.BinOf(s),
            long l => profile.BinOf(l),
            double d => double.IsNaN(d) ? -1 : profile.BinOf(d),
            bool b => profile.BinOf(b ? 1 : 0),
            _ => -1,
        });
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

        public Side(ProfileKind kind, ColumnProfile?[] profiles, ColumnType[]? types)
        {
            _kind = kind;
            Profiles = profiles;
            Types = types;
            Bins = new NumericBins?[profiles.Length];
            Offsets = new int[profiles.Length];
            NullSlots = new int[profiles.Length];
            Flat = [];
            Layout();
        }

        public ColumnProfile?[] Profiles { get; }

        public ColumnType[]? Types { get; }

        /// <summary>Per column, a numeric profile's bins (null: a category, or not counted).</summary>
        public NumericBins?[] Bins { get; }

        /// <summary>All columns' counts in one array: column c's bin b at Offsets[c] + b, its nulls at NullSlots[c].</summary>
        public long[] Flat { get; private set; }

        public int[] Offsets { get; }

        public int[] NullSlots { get; }

        /// <summary>Lays the counted columns' bins out in <see cref="Flat"/> (zeroed), each column's null slot after its bins.</summary>
        private void Layout()
        {
            var at = 0;
            for (var c = 0; c < Profiles.Length; c++)
            {
                var profile = Profiles[c];
                Bins[c] = profile is { Type: ProfileType.Numeric } ? new NumericBins(profile.Edges) : null;
                Offsets[c] = at;
                at += profile?.BinCount ?? 0;
                NullSlots[c] = at++;
            }

            Flat = new long[at];
        }

        /// <summary>While learning, per column its values (null: a column not profiled); null once counting.</summary>
        public ProfileBuilder?[]? Learners { get; set; }

        public void Adopt(IReadOnlyCollection<ColumnProfile> reference)
        {
            if (Learners is not { } learners)
            {
                return;
            }

            for (var c = 0; c < Profiles.Length; c++)
            {
                Profiles[c] = learners[c] is { } learner ? Find(reference, _kind, learner.Column) : null;
            }

            Layout();
            for (var c = 0; c < Profiles.Length; c++)
            {
                if (Profiles[c] is { } profile)
                {
                    var counts = new long[profile.BinCount + 1]; // bins, then nulls, as CountInto fills them
                    learners[c]!.CountInto(profile, counts);
                    counts.AsSpan().CopyTo(Flat.AsSpan(Offsets[c]));
                }
            }

            Learners = null;
        }

        public bool Any => Profiles.Any(p => p is not null);

        public void Add(int column, int bin) => Flat[bin < 0 ? NullSlots[column] : Offsets[column] + bin]++;

        public void Drain(List<ProfileCount> into)
        {
            for (var c = 0; c < Profiles.Length; c++)
            {
                if (Profiles[c] is not { } profile)
                {
                    continue;
                }

                for (var slot = Offsets[c]; slot <= NullSlots[c]; slot++)
                {
                    if (Flat[slot] > 0)
                    {
                        into.Add(new ProfileCount(profile.Column, _kind, slot == NullSlots[c] ? -1 : slot - Offsets[c], Flat[slot]));
                        Flat[slot] = 0;
                    }
                }
            }
        }
    }
}

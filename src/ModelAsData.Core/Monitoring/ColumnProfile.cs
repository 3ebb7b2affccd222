using System.Globalization;

namespace ModelAsData.Core.Monitoring;

/// <summary>Whether a profiled column is a source column the model reads or one of the model's decoded outputs.</summary>
public enum ProfileKind
{
    Input,
    Output,
}

/// <summary>How a column is binned: by numeric edges, or by its top categories plus "other".</summary>
public enum ProfileType
{
    Numeric,
    Category,
}

/// <summary>
/// One column's bins and counts: a baseline's, or a window's counted into a baseline's bins. Numeric bins, with
/// edges e₀ &lt; … &lt; eₘ₋₁: bin 0 holds x &lt; e₀ (underflow), bin i holds eᵢ₋₁ ≤ x &lt; eᵢ, the last inner bin
/// also holds x = eₘ₋₁, and bin m holds x &gt; eₘ₋₁ (overflow) — PostgreSQL's <c>width_bucket(x, edges)</c> with the
/// top edge closed. Category bins: one per category in <see cref="Categories"/>, then "other". Nulls are counted
/// apart (<see cref="NullCount"/>). Immutable once built; <see cref="BinOf(double)"/> is thread-safe.
/// </summary>
public sealed class ColumnProfile
{
    private readonly Dictionary<string, int>? _categoryBins;

    /// <summary>The categories that are numbers, by value: the doors count numbers (labels) without formatting each one.</summary>
    private readonly Dictionary<double, int>? _numberBins;

    public ColumnProfile(string column, ProfileKind kind, ProfileType type, double[]? edges, string[]? categories, long[] counts, long nullCount, double spread)
    {
        Column = column;
        Kind = kind;
        Type = type;
        Edges = edges ?? [];
        Categories = categories ?? [];
        Counts = counts;
        NullCount = nullCount;
        Spread = spread;
        if (type == ProfileType.Numeric)
        {
            if (Edges.Length == 0)
            {
                throw new ModelAsDataException(ErrorCode.InvalidArgument, $"Column '{column}' has no bin edges: give at least one.");
            }

            for (var i = 1; i < Edges.Length; i++)
            {
                if (!(Edges[i] > Edges[i - 1]))
                {
                    throw new ModelAsDataException(ErrorCode.InvalidArgument,
                        $"The bin edges of column '{column}' must rise: {Format(Edges[i - 1])} is followed by {Format(Edges[i])}.");
                }
            }
        }
        else
        {
            _categoryBins = new Dictionary<string, int>(StringComparer.Ordinal);
            _numberBins = [];
            for (var i = 0; i < Categories.Length; i++)
            {
                _categoryBins[Categories[i]] = i;
                if (double.TryParse(Categories[i], NumberStyles.Float, CultureInfo.InvariantCulture, out var number) && CategoryText(number) == Categories[i])
                {
                    _numberBins[number] = i;
                }
            }
        }

        if (counts.Length != BinCount)
        {
            throw new ModelAsDataException(ErrorCode.InvalidArgument, $"Column '{column}' has {BinCount} bins but {counts.Length} counts.");
        }
    }

    public string Column { get; }

    public ProfileKind Kind { get; }

    public ProfileType Type { get; }

    /// <summary>Numeric: the rising edges. Empty for categories.</summary>
    public double[] Edges { get; }

    /// <summary>Categories: the top categories, each its own bin, "other" after them. Empty for numbers.</summary>
    public string[] Categories { get; }

    /// <summary>Rows per bin (not counting nulls).</summary>
    public long[] Counts { get; }

    public long NullCount { get; }

    /// <summary>The baseline's standard deviation (numeric), which Wasserstein distances are divided by.</summary>
    public double Spread { get; }

    /// <summary>Where the profile comes from: <see cref="References.Baseline"/> or <see cref="References.FirstWindow"/>.</summary>
    public string Reference { get; init; } = References.Baseline;

    public int BinCount => Type == ProfileType.Numeric ? Edges.Length + 1 : Categories.Length + 1;

    public long Rows => Counts.Sum() + NullCount;

    /// <summary>The bin of a number: a numeric column's by its edges, a category column's by the number's text.</summary>
    public int BinOf(double value)
    {
        if (Type == ProfileType.Category)
        {
            return _numberBins!.TryGetValue(value, out var bin) ? bin : Categories.Length;
        }

        // The number of edges ≤ value (width_bucket), with the top edge in the last inner bin.
        int lo = 0, hi = Edges.Length;
        while (lo < hi)
        {
            var mid = (lo + hi) >>> 1;
            if (Edges[mid] <= value)
            {
                lo = mid + 1;
            }
            else
            {
                hi = mid;
            }
        }

        return lo == Edges.Length && Edges.Length > 1 && value == Edges[^1] ? lo - 1 : lo;
    }

    /// <summary>The bin of a category ("other" for one not in the baseline's top); for a numeric column, of the number the text reads as, -1 (counted as null) if none.</summary>
    public int BinOf(string value) =>
        Type == ProfileType.Numeric
            ? (double.TryParse(value, NumberStyles.Float, CultureInfo.InvariantCulture, out var x) ? BinOf(x) : -1)
            : _categoryBins!.TryGetValue(value, out var bin) ? bin : Categories.Length;

    /// <summary>Where each numeric bin sits, for Wasserstein: the under- and overflow bins at the outer edges, inner bins at their middles.</summary>
    public double[] Positions()
    {
        var m = Edges.Length;
        var positions = new double[m + 1];
        positions[0] = Edges[0];
        for (var i = 1; i < m; i++)
        {
            positions[i] = (Edges[i - 1] + Edges[i]) / 2;
        }

        positions[m] = Edges[m - 1];
        return positions;
    }

    /// <summary>The category text of a number: integers as integers ("3"), booleans as 1/0 (as the stores read them).</summary>
    public static string CategoryText(double value) =>
        value == Math.Floor(value) && Math.Abs(value) < 1e15 ? ((long)value).ToString(CultureInfo.InvariantCulture) : value.ToString("R", CultureInfo.InvariantCulture);

    /// <summary>The label of a bin, as the report and the SQL show it.</summary>
    public string BinLabel(int bin)
    {
        if (Type == ProfileType.Category)
        {
            return bin < Categories.Length ? Categories[bin] : "other";
        }

        if (bin == 0)
        {
            return $"< {Format(Edges[0])}";
        }

        if (bin == Edges.Length)
        {
            return $"> {Format(Edges[^1])}";
        }

        return bin == Edges.Length - 1 ? $"[{Format(Edges[bin - 1])}, {Format(Edges[bin])}]" : $"[{Format(Edges[bin - 1])}, {Format(Edges[bin])})";
    }

    private static string Format(double value) => value.ToString("G6", CultureInfo.InvariantCulture);
}

using System.Globalization;

namespace ModelAsData.Core.Monitoring;

/// <summary>
/// Builds a baseline's <see cref="ColumnProfile"/> from a column's values, by the rules mad.set_baseline follows in
/// SQL (sql/postgres/018_drift.sql), so both stores profile the same rows the same way:
/// text (and booleans) are categories, and so are whole numbers with at most <see cref="MaxCategories"/> distinct
/// values; other numbers get edges at the quantiles 0, 1/bins, …, 1 (percentile_disc: the first value whose position
/// reaches ⌈f·n⌉), repeated edges dropped, or the edges given. Categories: the <see cref="MaxCategories"/> most
/// frequent (ties by ordinal text), the rest "other". Not thread-safe.
/// </summary>
public sealed class ProfileBuilder(string column, ProfileKind kind)
{
    public const int DefaultBins = 10;

    public const int MaxCategories = 20;

    private readonly List<double> _numbers = [];
    private readonly List<string> _texts = [];
    private long _nulls;
    private bool _sawFraction;

    public string Column { get; } = column;

    public long Rows => _numbers.Count + _texts.Count + _nulls;

    public void AddNull() => _nulls++;

    /// <summary>Whether a value other than null was added.</summary>
    public bool HasValues => _numbers.Count + _texts.Count > 0;

    /// <summary>Counts the values added into <paramref name="profile"/>'s bins (nulls last), as ProfileCounter does row by row.</summary>
    public void CountInto(ColumnProfile profile, long[] counts)
    {
        foreach (var x in _numbers)
        {
            counts[profile.BinOf(x)]++;
        }

        foreach (var t in _texts)
        {
            var bin = profile.BinOf(t);
            counts[bin < 0 ? counts.Length - 1 : bin]++;
        }

        counts[^1] += _nulls;
    }

    /// <summary>A number; <paramref name="whole"/> when it comes from an integer (or boolean) column, so it may be a category.</summary>
    public void Add(double value, bool whole)
    {
        if (double.IsNaN(value))
        {
            _nulls++;
            return;
        }

        _numbers.Add(value);
        _sawFraction |= !whole;
    }

    public void Add(string value) => _texts.Add(value);

    /// <summary>
    /// The profile; <paramref name="edges"/> are the edges given for this column (null: quantiles over
    /// <paramref name="bins"/>). Refuses an empty or all-null column, and edges given for a category column.
    /// </summary>
    public ColumnProfile Build(double[]? edges = null, int bins = DefaultBins)
    {
        if (Rows == 0)
        {
            throw new ModelAsDataException(ErrorCode.InvalidArgument, "The baseline has no rows: give a table or view with the rows the version was trained or validated on.");
        }

        if (_numbers.Count + _texts.Count == 0)
        {
            throw new ModelAsDataException(ErrorCode.InvalidArgument,
                $"Column '{Column}' is null in all {Rows} baseline rows, so it has no distribution to compare with: fill it, or map the input to another column.");
        }

        if (bins < 1)
        {
            throw new ModelAsDataException(ErrorCode.InvalidArgument, $"A baseline needs at least 1 bin; got {bins}.");
        }

        var isCategory = _texts.Count > 0 || (!_sawFraction && edges is null && _numbers.Distinct().Count() <= MaxCategories);
        if (isCategory && edges is not null)
        {
            throw new ModelAsDataException(ErrorCode.InvalidArgument, $"Column '{Column}' holds categories; bin edges apply to numeric columns only.");
        }

        return isCategory ? BuildCategories() : BuildNumeric(edges, bins);
    }

    private ColumnProfile BuildCategories()
    {
        var texts = _texts.Concat(_numbers.Select(ColumnProfile.CategoryText));
        var top = texts.GroupBy(t => t, StringComparer.Ordinal)
            .Select(g => (Text: g.Key, Count: (long)g.Count()))
            .OrderByDescending(g => g.Count).ThenBy(g => g.Text, StringComparer.Ordinal)
            .ToList();
        var categories = top.Take(MaxCategories).Select(g => g.Text).ToArray();
        var counts = new long[categories.Length + 1];
        for (var i = 0; i < top.Count; i++)
        {
            counts[Math.Min(i, categories.Length)] += top[i].Count;
        }

        return new ColumnProfile(Column, kind, ProfileType.Category, null, categories, counts, _nulls, 0);
    }

    private ColumnProfile BuildNumeric(double[]? given, int bins)
    {
        _numbers.Sort();
        var n = _numbers.Count;
        double[] edges;
        if (given is not null)
        {
            edges = given;
        }
        else
        {
            var quantiles = new List<double>();
            for (var i = 0; i <= bins; i++)
            {
                var rank = (long)Math.Ceiling((double)i / bins * n);
                var value = _numbers[(int)Math.Max(rank, 1) - 1];
                if (quantiles.Count == 0 || value > quantiles[^1])
                {
                    quantiles.Add(value);
                }
            }

            edges = [.. quantiles];
        }

        var mean = _numbers.Average();
        var spread = Math.Sqrt(_numbers.Sum(x => (x - mean) * (x - mean)) / n);
        var profile = new ColumnProfile(Column, kind, ProfileType.Numeric, edges, null, new long[edges.Length + 1], _nulls, spread);
        foreach (var x in _numbers)
        {
            profile.Counts[profile.BinOf(x)]++;
        }

        return profile;
    }

    /// <summary>The edges given for each column in a JSON object ({"tenure": [3, 12, 24]}), checked to rise.</summary>
    public static Dictionary<string, double[]> ParseBins(string? json)
    {
        var result = new Dictionary<string, double[]>(StringComparer.Ordinal);
        if (string.IsNullOrWhiteSpace(json))
        {
            return result;
        }

        System.Text.Json.JsonElement root;
        try
        {
            root = System.Text.Json.JsonDocument.Parse(json).RootElement;
        }
        catch (System.Text.Json.JsonException e)
        {
            throw new ModelAsDataException(ErrorCode.InvalidArgument, $"Bins must be a JSON object such as {{\"tenure\": [3, 12, 24]}}; {e.Message}", e);
        }

        if (root.ValueKind != System.Text.Json.JsonValueKind.Object)
        {
            throw new ModelAsDataException(ErrorCode.InvalidArgument, $"Bins must be a JSON object such as {{\"tenure\": [3, 12, 24]}}; got {json}.");
        }

        foreach (var property in root.EnumerateObject())
        {
            if (property.Value.ValueKind != System.Text.Json.JsonValueKind.Array || property.Value.GetArrayLength() == 0
                || property.Value.EnumerateArray().Any(e => e.ValueKind != System.Text.Json.JsonValueKind.Number))
            {
                throw new ModelAsDataException(ErrorCode.InvalidArgument, $"The bins of column '{property.Name}' must be a list of numbers such as [3, 12, 24]; got {property.Value}.");
            }

            var edges = property.Value.EnumerateArray().Select(e => e.GetDouble()).ToArray();
            for (var i = 1; i < edges.Length; i++)
            {
                if (!(edges[i] > edges[i - 1]))
                {
                    throw new ModelAsDataException(ErrorCode.InvalidArgument,
                        $"The bins of column '{property.Name}' must rise: {edges[i - 1].ToString(CultureInfo.InvariantCulture)} is followed by {edges[i].ToString(CultureInfo.InvariantCulture)}.");
                }
            }

            result[property.Name] = edges;
        }

        return result;
    }
}

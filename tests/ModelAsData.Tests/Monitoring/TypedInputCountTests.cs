using ModelAsData.Core.Monitoring;

namespace ModelAsData.Tests.Monitoring;

/// <summary>
/// The embedded refresh counts each value as it read it for the model (ProfileCounter.CountInput typed): the counts
/// must be those of the boxed CountInput(object) it replaced, for a numeric and a category column, counting and learning.
/// </summary>
public sealed class TypedInputCountTests
{
    private static readonly ColumnProfile[] s_baseline =
    [
        new("x", ProfileKind.Input, ProfileType.Numeric, [1.0, 2.0, 3.0], null, new long[4], 0, 1),
        new("kind", ProfileKind.Input, ProfileType.Category, null, ["a", "b", "7"], new long[4], 0, 0),
    ];

    private static readonly object?[][] s_rows =
    [
        [0.5, "a"], [1.0, "b"], [3.0, "c"], [2L, 7L], [null, null], [double.NaN, 7.0], [9L, "7"], [2.5, 3L], ["2.5", "a"], ["x", null],
    ];

    [Fact]
    public void Typed_values_count_into_the_same_bins_as_boxed_ones()
    {
        var boxed = ProfileCounter.Create(s_baseline, ["x", "kind"], [])!;
        var typed = ProfileCounter.Create(s_baseline, ["x", "kind"], [])!;
        Count(boxed, typed);
        var expected = Sorted(boxed.Drain());
        Assert.Equal(10, expected.Count); // every bin is hit: x 0-3 and nulls, kind a, b, 7, other and nulls
        Assert.Equal(expected, Sorted(typed.Drain()));
    }

    [Fact]
    public void Typed_values_are_learned_as_boxed_ones()
    {
        var boxed = ProfileCounter.Learn("m", 1, ["x", "kind"], []);
        var typed = ProfileCounter.Learn("m", 1, ["x", "kind"], []);
        Count(boxed, typed);
        Assert.Equal(boxed.LearnedProfiles().Select(Describe), typed.LearnedProfiles().Select(Describe));
        boxed.Adopt(s_baseline);
        typed.Adopt(s_baseline);
        Assert.Equal(Sorted(boxed.Drain()), Sorted(typed.Drain()));
    }

    private static void Count(ProfileCounter boxed, ProfileCounter typed)
    {
        foreach (var row in s_rows)
        {
            for (var c = 0; c < row.Length; c++)
            {
                boxed.CountInput(c, row[c]);
                switch (row[c])
                {
                    case double d: typed.CountInput(c, d); break;
                    case long l: typed.CountInput(c, l); break;
                    case string s: typed.CountInput(c, s); break;
                    default: typed.CountNullInput(c); break;
                }
            }
        }
    }

    private static List<ProfileCount> Sorted(IReadOnlyList<ProfileCount> counts) =>
        [.. counts.OrderBy(c => c.Column, StringComparer.Ordinal).ThenBy(c => c.Bin)];

    private static string Describe(ColumnProfile p) =>
        $"{p.Column} {p.Type} [{string.Join(",", p.Edges)}] [{string.Join(",", p.Categories)}] [{string.Join(",", p.Counts)}] {p.NullCount}";
}

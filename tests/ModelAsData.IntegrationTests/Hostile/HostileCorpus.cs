using System.Text;

namespace ModelAsData.IntegrationTests.Hostile;

/// <summary>
/// Hostile identifiers and values, generated the same every run: quotes, semicolons and SQL, dollar quotes,
/// backslashes, format() directives, JSON and markup brackets, model-reference separators (<c>a@b@c</c>), NUL-free
/// control characters, bidirectional marks and zero-width characters, multibyte UTF-8 at the 63-byte identifier
/// limit and one byte past it, reserved words, and a few names that are valid (so that success is checked too).
/// </summary>
internal static class HostileCorpus
{
    private static readonly string[] s_fragments =
    [
        "'", "''", "\"", "\"\"", "`", ";", "; DROP TABLE mad.models; --", "'; DROP TABLE mad.models; --",
        "\"; DROP TABLE mad.models; --", "'); DROP TABLE mad.models; --", "$$", "$x$", "$1", "\\", "\\\\", "\\'", "\\x00",
        "%I", "%s", "%L", "%1$s", "%%", "{", "}", "{}", "[", "]", "[red]", "[/]", "[[", "]]", "<b>", "&amp;", "@", "@@",
        "a@b", "a@b@c", "churn@", "@7", "churn@-1", "churn@0", "churn@99999999999", "churn@1e3", "churn@ production",
        " ", "  ", "\t", "\n", "\r\n", "\u0001", "\u0008", "\u001b[31m", "\u001f", "\u007f", "\u0085", "\u00a0",
        "\u200b", "\u200e", "\u200f", "\u202e", "\u2066", "\ufeff", "\u2028", "é", "É", "ß", "ǅ", "İ", "ı", "ﬁ", "Å",
        "日本語", "😀", "👩‍👩‍👧", "🏳️‍🌈", "ꙮ", "a.b", "public.x", "mad.models", "pg_catalog.pg_class", "mad_out.x",
        "*", "?", "-", "--", "/*", "*/", "#", ",", "a,b", "(", ")", "::text", "=", "NULL", "null", "true", "select",
        "user", "1", "-1", "0", "01", "1e3", "a b", "A", "Abc", "ABC", "_", "__", "a_", "x1", "with\"quote",
    ];

    /// <summary>Every string once, in a fixed order: at least <paramref name="count"/>, none with a NUL (text cannot hold one).</summary>
    public static IReadOnlyList<string> Strings(int count = 1000)
    {
        var all = new List<string>();
        var seen = new HashSet<string>(StringComparer.Ordinal);
        void Add(string s)
        {
            if (s.Length > 0 && !s.Contains('\0', StringComparison.Ordinal) && seen.Add(s))
            {
                all.Add(s);
            }
        }

        foreach (var s in Limits())
        {
            Add(s);
        }

        foreach (var f in s_fragments)
        {
            Add(f);
            Add("x" + f);
            Add(f + "x");
            Add("churn" + f + "churn");
            Add(f + f);
            Add(f.ToUpperInvariant());
            Add("a_" + f + "_z");
            Add(f + "@production");
            Add("churn@" + f);
        }

        for (var i = 0; all.Count < count; i++)
        {
            // Pairs of fragments, to reach the count with strings no single rule above makes.
            Add(s_fragments[i % s_fragments.Length] + s_fragments[(i * 7 + 3) % s_fragments.Length] + i.ToString(System.Globalization.CultureInfo.InvariantCulture));
        }

        return all;
    }

    /// <summary>A few hostile strings for the slower doors (a CLI run each, a table each).</summary>
    public static IReadOnlyList<string> Sample(int count) =>
        [.. Strings().Where((_, i) => i % Math.Max(1, Strings().Count / count) == 0).Take(count)];

    /// <summary>Names at PostgreSQL's identifier limit (63 bytes) and one byte past it, in 1- to 4-byte UTF-8.</summary>
    public static IEnumerable<string> Limits()
    {
        yield return new string('x', 63);
        yield return new string('x', 64);
        yield return "a" + string.Concat(Enumerable.Repeat("é", 31));       // 63 bytes, 32 characters
        yield return string.Concat(Enumerable.Repeat("é", 32));             // 64 bytes
        yield return string.Concat(Enumerable.Repeat("€", 21));             // 63 bytes
        yield return string.Concat(Enumerable.Repeat("€", 21)) + "x";       // 64 bytes
        yield return string.Concat(Enumerable.Repeat("😀", 15)) + "xyz";    // 63 bytes
        yield return string.Concat(Enumerable.Repeat("😀", 16));            // 64 bytes
        yield return new string('é', 63);                                    // 63 characters, 126 bytes
        yield return new string('x', 200);
        yield return new string('x', 5000);
    }

    /// <summary>Whether <paramref name="s"/> is a name mad accepts (Names.IsValid), by its rule, written again here.</summary>
    public static bool IsValidName(string s) =>
        s.Length is > 0 and <= 63 && s[0] is (>= 'a' and <= 'z') or '_' && s.All(c => c is (>= 'a' and <= 'z') or (>= '0' and <= '9') or '_');

    /// <summary>Bytes of <paramref name="s"/> in UTF-8, for messages.</summary>
    public static int Utf8Bytes(string s) => Encoding.UTF8.GetByteCount(s);
}

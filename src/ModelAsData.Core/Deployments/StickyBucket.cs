using System.Buffers;
using System.Buffers.Binary;
using System.Globalization;
using System.Security.Cryptography;
using System.Text;

namespace ModelAsData.Core.Deployments;

/// <summary>
/// The published sticky hash of a deployment (docs/DEPLOYMENTS.md), the same as <c>mad.bucket</c> in PostgreSQL and
/// <c>bucket()</c> on SQLite connections: the first 4 bytes of sha256(utf8(seed || ':' || key_text)), read big-endian as
/// an unsigned 32-bit integer, divided by 2^32. A key is in the canary when its bucket is below percent / 100, so
/// raising the percent only adds keys. <see cref="KeyText"/> is the one place C# spells a key's canonical text.
/// </summary>
public static class StickyBucket
{
    /// <summary>Separates the values of a composite key in its canonical text (U+001F, the unit separator).</summary>
    public const char KeySeparator = '\u001F';

    private const double TwoTo32 = 4294967296.0;

    /// <summary>The bucket of a key under a deployment's seed, in [0, 1).</summary>
    public static double Of(long seed, string keyText)
    {
        ArgumentNullException.ThrowIfNull(keyText);
        var prefix = seed.ToString(CultureInfo.InvariantCulture) + ":";
        var length = Encoding.UTF8.GetByteCount(prefix) + Encoding.UTF8.GetByteCount(keyText);
        var rented = ArrayPool<byte>.Shared.Rent(length);
        try
        {
            var written = Encoding.UTF8.GetBytes(prefix, rented);
            written += Encoding.UTF8.GetBytes(keyText, 0, keyText.Length, rented, written);
            Span<byte> hash = stackalloc byte[SHA256.HashSizeInBytes];
            SHA256.HashData(rented.AsSpan(0, written), hash);
            return BinaryPrimitives.ReadUInt32BigEndian(hash) / TwoTo32;
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(rented);
        }
    }

    /// <summary>Whether a key with this bucket is served by the canary at <paramref name="percent"/> (0..100).</summary>
    public static bool InCanary(double bucket, double percent) => bucket < percent / 100.0;

    /// <summary>
    /// Whether the key is served by the canary at <paramref name="percent"/> under <paramref name="seed"/>. At 100 %
    /// (or more) every key is in and at 0 % (or less) none, whatever its bucket (in [0, 1)), so no hash is computed:
    /// a 100 % shadow or canary costs no sha256 per row.
    /// </summary>
    public static bool InCanary(long seed, string keyText, double percent) =>
        !NeedsHash(percent) ? percent >= 100 : InCanary(Of(seed, keyText), percent);

    /// <summary>Whether <see cref="InCanary(long, string, double)"/> at this percent depends on the key at all (false at 0 % and 100 %).</summary>
    public static bool NeedsHash(double percent) => percent > 0 && percent < 100;

    /// <summary>
    /// A key's canonical text: integers in decimal, text as is, a uuid in its lower-case hyphenated form, a boolean as
    /// true/false (as PostgreSQL's text output writes them); a composite key's values joined by U+001F.
    /// </summary>
    public static string KeyText(params ReadOnlySpan<object?> values)
    {
        if (values.Length == 1)
        {
            return ValueText(values[0]);
        }

        var text = new StringBuilder();
        for (var i = 0; i < values.Length; i++)
        {
            if (i > 0)
            {
                text.Append(KeySeparator);
            }

            text.Append(ValueText(values[i]));
        }

        return text.ToString();
    }

    private static string ValueText(object? value) => value switch
    {
        null or DBNull => throw new ArgumentException("A key value is NULL; a deployment routes only rows whose key columns are all set."),
        string s => s,
        long l => l.ToString(CultureInfo.InvariantCulture),
        int i => i.ToString(CultureInfo.InvariantCulture),
        short s => s.ToString(CultureInfo.InvariantCulture),
        byte b => b.ToString(CultureInfo.InvariantCulture),
        Guid g => g.ToString("D"),
        bool b => b ? "true" : "false",
        _ => throw new ArgumentException(
            $"A key of type {value.GetType().Name} has no canonical text here; deployments route keys of integers, text, uuid or boolean (any other type: use its PostgreSQL text form)."),
    };
}

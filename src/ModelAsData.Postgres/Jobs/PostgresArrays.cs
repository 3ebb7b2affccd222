using System.Buffers.Binary;
using System.Globalization;
using System.Text;
using ModelAsData.Core.Onnx;

namespace ModelAsData.Postgres.Jobs;

/// <summary>
/// PostgreSQL's binary array format (array_send / array_recv), read and written here rather than by Npgsql's array
/// converters: one pass, straight into a flat array with the dimensions beside it, for any rank, and an array that
/// holds a NULL element becomes a message instead of an exception in the middle of a COPY. Layout: ndim, has-null
/// flag, element type oid, (size, lower bound) per dimension, then per element its length (-1: NULL) and bytes,
/// all big-endian.
/// </summary>
internal static class PostgresArrays
{
    private const uint Bool = 16;
    private const uint Int8 = 20;
    private const uint Int2 = 21;
    private const uint Int4 = 23;
    private const uint Text = 25;
    private const uint Float4 = 700;
    private const uint Float8 = 701;
    private const uint Numeric = 1700;

    /// <summary>PostgreSQL's MAXDIM: an array has at most six dimensions; a tensor of higher rank is stored flat.</summary>
    public const int MaxDimensions = 6;

    /// <summary>Whether a read type of <c>mad.feature_reads</c> is a whole tensor per row (an array, or bytea).</summary>
    public static bool IsTensor(string readType) => readType == "bytea" || readType.EndsWith("[]", StringComparison.Ordinal);

    /// <summary>
    /// Reads one array: its elements as a flat CLR array (float, double, short, int, long, bool or string) and its
    /// dimensions; or null with <paramref name="error"/> saying why it cannot be a tensor.
    /// </summary>
    public static RowTensor? Read(ReadOnlySpan<byte> data, out string? error)
    {
        error = null;
        var ndim = BinaryPrimitives.ReadInt32BigEndian(data);
        var element = BinaryPrimitives.ReadUInt32BigEndian(data[8..]);
        var dims = new long[ndim];
        long count = ndim == 0 ? 0 : 1;
        for (var d = 0; d < ndim; d++)
        {
            dims[d] = BinaryPrimitives.ReadInt32BigEndian(data[(12 + (8 * d))..]);
            count *= dims[d];
        }

        var at = 12 + (8 * ndim);
        Array values = element switch
        {
            Float4 => new float[count],
            Float8 => new double[count],
            Int2 => new short[count],
            Int4 => new int[count],
            Int8 => new long[count],
            Bool => new bool[count],
            Text => new string[count],
            _ => throw new InvalidDataException($"An array of element type oid {element} was read; mad.feature_reads reads arrays of real, double precision, smallint, integer, bigint, boolean or text only."),
        };
        for (var i = 0; i < count; i++)
        {
            var length = BinaryPrimitives.ReadInt32BigEndian(data[at..]);
            at += 4;
            if (length < 0)
            {
                error = $"the array holds a NULL at element {i.ToString(CultureInfo.InvariantCulture)}";
                return null;
            }

            var bytes = data.Slice(at, length);
            at += length;
            switch (values)
            {
                case float[] f: f[i] = BinaryPrimitives.ReadSingleBigEndian(bytes); break;
                case double[] f: f[i] = BinaryPrimitives.ReadDoubleBigEndian(bytes); break;
                case short[] n: n[i] = BinaryPrimitives.ReadInt16BigEndian(bytes); break;
                case int[] n: n[i] = BinaryPrimitives.ReadInt32BigEndian(bytes); break;
                case long[] n: n[i] = BinaryPrimitives.ReadInt64BigEndian(bytes); break;
                case bool[] b: b[i] = bytes[0] != 0; break;
                case string[] s: s[i] = Encoding.UTF8.GetString(bytes); break;
            }
        }

        return new RowTensor(values, ndim == 0 ? [0] : dims);
    }

    /// <summary>Writes a row's tensor (<see cref="ScoredBatch.GetTensor"/>) as a binary array of its dimensions (a scalar as one element).</summary>
    public static byte[] Write(RowTensor tensor)
    {
        var values = tensor.Values;
        var dims = Dims(tensor);
        var empty = values.Length == 0;
        // By the exact type: the runtime lets a long[] pass as a ulong[] and back (same size), so a pattern would mix them.
        var unsigned = values.GetType() == typeof(ulong[]);
        var (oid, size) = values switch
        {
            float[] => (Float4, 4),
            double[] => (Float8, 8),
            _ when unsigned => (Numeric, -1),
            long[] => (Int8, 8),
            bool[] => (Bool, 1),
            string[] => (Text, -1),
            _ => throw new InvalidOperationException($"Cannot write an array of {values.GetType().GetElementType()?.Name}."),
        };
        var ndim = empty ? 0 : dims.Length;
        var length = 12 + (8 * ndim) + (values switch
        {
            string[] strings => strings.Sum(s => 4 + Encoding.UTF8.GetByteCount(s)),
            ulong[] whole when unsigned => whole.Sum(u => 4 + NumericLength(u)),
            _ => values.Length * (4 + size),
        });
        var data = new byte[length];
        var span = data.AsSpan();
        BinaryPrimitives.WriteInt32BigEndian(span, ndim);
        BinaryPrimitives.WriteInt32BigEndian(span[4..], 0);
        BinaryPrimitives.WriteUInt32BigEndian(span[8..], oid);
        for (var d = 0; d < ndim; d++)
        {
            BinaryPrimitives.WriteInt32BigEndian(span[(12 + (8 * d))..], checked((int)dims[d]));
            BinaryPrimitives.WriteInt32BigEndian(span[(16 + (8 * d))..], 1);
        }

        var at = 12 + (8 * ndim);
        for (var i = 0; i < values.Length; i++)
        {
            var item = span[(at + 4)..];
            var written = size;
            switch (values)
            {
                case float[] f: BinaryPrimitives.WriteSingleBigEndian(item, f[i]); break;
                case double[] f: BinaryPrimitives.WriteDoubleBigEndian(item, f[i]); break;
                case ulong[] u when unsigned: written = WriteNumeric(item, u[i]); break;
                case long[] n: BinaryPrimitives.WriteInt64BigEndian(item, n[i]); break;
                case bool[] b: item[0] = b[i] ? (byte)1 : (byte)0; break;
                default: written = Encoding.UTF8.GetBytes(((string[])values)[i], item); break;
            }

            BinaryPrimitives.WriteInt32BigEndian(span[at..], written);
            at += 4 + written;
        }

        return data;
    }

    /// <summary>A row's tensor as an array literal (<c>{{1,2},{3,4}}</c>) for statements that take arrays as text.</summary>
    public static string Literal(RowTensor tensor)
    {
        var builder = new StringBuilder();
        var at = 0;
        Nest(builder, tensor.Values, Dims(tensor), 0, ref at);
        return builder.ToString();
    }

    /// <summary>The dimensions an array of the tensor is written with: a scalar as one element, beyond six flat.</summary>
    private static long[] Dims(RowTensor tensor) =>
        tensor.Dims.Length == 0 ? [1L] : tensor.Dims.Length > MaxDimensions ? [tensor.Values.Length] : tensor.Dims;

    private static void Nest(StringBuilder builder, Array values, long[] dims, int dim, ref int at)
    {
        if (dim == dims.Length)
        {
            builder.Append(values switch
            {
                float[] f => Number(f[at]),
                double[] f => Number(f[at]),
                ulong[] u when u.GetType() == typeof(ulong[]) => u[at].ToString(CultureInfo.InvariantCulture), // not a long[] passing as one
                long[] n => n[at].ToString(CultureInfo.InvariantCulture),
                bool[] b => b[at] ? "t" : "f",
                _ => "\"" + ((string[])values)[at].Replace("\\", "\\\\", StringComparison.Ordinal).Replace("\"", "\\\"", StringComparison.Ordinal) + "\"",
            });
            at++;
            return;
        }

        builder.Append('{');
        for (var i = 0; i < dims[dim]; i++)
        {
            if (i > 0)
            {
                builder.Append(',');
            }

            Nest(builder, values, dims, dim + 1, ref at);
        }

        builder.Append('}');
    }

    /// <summary>Bytes of a whole number in numeric's binary form: four 16-bit headers, then its base-10000 digits.</summary>
    private static int NumericLength(ulong value)
    {
        var digits = 0;
        for (; value > 0; value /= 10_000)
        {
            digits++;
        }

        return 8 + (2 * digits);
    }

    /// <summary>
    /// Writes a uint64 as numeric_send does (ndigits, weight, sign, dscale, then base-10000 digits from the most
    /// significant): exact, where Npgsql would go through decimal per element and an array of any rank would need
    /// its own converter. Returns the bytes written.
    /// </summary>
    private static int WriteNumeric(Span<byte> item, ulong value)
    {
        var length = NumericLength(value);
        var digits = (length - 8) / 2;
        BinaryPrimitives.WriteInt16BigEndian(item, (short)digits);
        BinaryPrimitives.WriteInt16BigEndian(item[2..], (short)Math.Max(digits - 1, 0));
        BinaryPrimitives.WriteInt16BigEndian(item[4..], 0); // positive
        BinaryPrimitives.WriteInt16BigEndian(item[6..], 0); // no digits after the point
        for (var d = digits - 1; d >= 0; d--, value /= 10_000)
        {
            BinaryPrimitives.WriteInt16BigEndian(item[(8 + (2 * d))..], (short)(value % 10_000));
        }

        return length;
    }

    /// <summary>A number as PostgreSQL's input reads it back exactly (NaN and the infinities spelt its way).</summary>
    private static string Number(double value) => double.IsNaN(value) ? "NaN"
        : double.IsPositiveInfinity(value) ? "Infinity"
        : double.IsNegativeInfinity(value) ? "-Infinity"
        : value.ToString("R", CultureInfo.InvariantCulture);

    private static string Number(float value) => float.IsFinite(value) ? value.ToString("R", CultureInfo.InvariantCulture) : Number((double)value);
}

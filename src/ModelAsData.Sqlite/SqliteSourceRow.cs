using ModelAsData.Core.Monitoring;
using ModelAsData.Core.Onnx;
using SQLitePCL;

namespace ModelAsData.Sqlite;

/// <summary>
/// The feature columns of the source row a refresh has just stepped to, each read once through SQLite's API, typed:
/// the model's input and the drift counter both take the value from here. Reading a column costs two calls into SQLite
/// (its storage class, then its value), each a P/Invoke that locks the connection's mutex; counting used to read the
/// columns again, boxed, which cost the embedded refresh ~15 % (docs/BENCHMARKS.md, issue 14). Owned by one refresh
/// pass; not thread-safe.
/// </summary>
internal sealed class SqliteSourceRow(int columns)
{
    private readonly int[] _types = new int[columns];
    private readonly double[] _doubles = new double[columns];
    private readonly long[] _longs = new long[columns];
    private readonly string?[] _texts = new string?[columns];
    private readonly object?[] _others = new object?[columns];

    /// <summary>Reads the row's columns <paramref name="first"/> .. <paramref name="first"/> + columns − 1 of <paramref name="reader"/>.</summary>
    public void Read(SqliteRawStatement reader, int first)
    {
        for (var c = 0; c < _types.Length; c++)
        {
            var ordinal = first + c;
            switch (_types[c] = reader.ColumnType(ordinal))
            {
                case raw.SQLITE_FLOAT: _doubles[c] = reader.GetDouble(ordinal); break;
                case raw.SQLITE_INTEGER: _longs[c] = reader.GetInt64(ordinal); break;
                case raw.SQLITE_TEXT: _texts[c] = reader.GetString(ordinal); break;
                default: _others[c] = reader.GetValue(ordinal); break; // NULL, or a BLOB
            }
        }
    }

    /// <summary>Counts every column for drift, as <see cref="ProfileCounter.CountInput(int, object?)"/> counts the value read.</summary>
    public void Count(ProfileCounter counter)
    {
        for (var c = 0; c < _types.Length; c++)
        {
            switch (_types[c])
            {
                case raw.SQLITE_FLOAT: counter.CountInput(c, _doubles[c]); break;
                case raw.SQLITE_INTEGER: counter.CountInput(c, _longs[c]); break;
                case raw.SQLITE_TEXT: counter.CountInput(c, _texts[c]!); break;
                default: counter.CountInput(c, _others[c]); break;
            }
        }
    }

    /// <summary>Sets the model's input <paramref name="slot"/> from column <paramref name="column"/>; the error that stops it, or null.</summary>
    public string? Set(ModelScorer scorer, int slot, int column) => _types[column] switch
    {
        raw.SQLITE_FLOAT => scorer.Set(slot, _doubles[column]),
        raw.SQLITE_INTEGER => scorer.Set(slot, _longs[column]),
        raw.SQLITE_TEXT => scorer.Set(slot, _texts[column]!),
        _ => scorer.Set(slot, _others[column]),
    };
}

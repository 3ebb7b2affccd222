using System.Security.Cryptography;
using Parquet;
using Parquet.Schema;

namespace ModelAsData.Sqlite;

/// <summary>
/// A training-set file as Parquet from a SQLite file's rows, with the types PostgreSQL's export gives the same
/// columns (ModelAsData.Postgres.Export.ParquetCopy): INTEGER → int64, REAL → double, other declared types → UTF-8
/// string; observed_at and served_at UTC timestamps in microseconds, served_version int32; every column nullable;
/// row groups of 100,000 rows. A column whose values do not all fit its declared type (SQLite lets them) is written
/// as strings rather than failing.
/// </summary>
internal static class SqliteTrainingSetParquet
{
    private const int RowGroupRows = 100_000;

    public enum Kind
    {
        Int32,
        Int64,
        Double,
        Timestamp,
        Text,
    }

    /// <summary>The kind of a declared SQLite column type, by SQLite's affinity rules (INT, then REAL/FLOA/DOUB).</summary>
    public static Kind KindOf(string? declared)
    {
        var type = (declared ?? "").ToUpperInvariant();
        return type.Contains("INT", StringComparison.Ordinal) ? Kind.Int64
            : type.Contains("REAL", StringComparison.Ordinal) || type.Contains("FLOA", StringComparison.Ordinal) || type.Contains("DOUB", StringComparison.Ordinal) ? Kind.Double
            : Kind.Text;
    }

    public static async Task<string> WriteAsync(string path, IReadOnlyList<string> names, Kind[] declared, IReadOnlyList<SqliteTrainingSets.Candidate> rows, CancellationToken cancellationToken)
    {
        var values = rows.Select(Values).ToList();
        var kinds = declared.Select((k, i) => values.All(v => Fits(k, v[i])) ? k : Kind.Text).ToArray();
        var fields = names.Select((n, i) => Field(n, kinds[i])).ToArray();
        await using (var file = new FileStream(path, FileMode.Create, FileAccess.ReadWrite, FileShare.None, 1 << 16))
        await using (var writer = await ParquetWriter.CreateAsync(new ParquetSchema(fields), file, cancellationToken: cancellationToken))
        {
            for (var start = 0; start < values.Count || (start == 0 && values.Count == 0); start += RowGroupRows)
            {
                var group = values.Skip(start).Take(RowGroupRows).ToList();
                using var rowGroup = writer.CreateRowGroup();
                for (var i = 0; i < fields.Length; i++)
                {
                    var column = group.Select(v => v[i]).ToList();
                    switch (kinds[i])
                    {
                        case Kind.Int32: await rowGroup.WriteAsync<int>(fields[i], column.Select(v => v is null ? (int?)null : Convert.ToInt32(v, System.Globalization.CultureInfo.InvariantCulture)).ToArray(), cancellationToken: cancellationToken); break;
                        case Kind.Int64: await rowGroup.WriteAsync<long>(fields[i], column.Select(v => v is null ? (long?)null : (long)v).ToArray(), cancellationToken: cancellationToken); break;
                        case Kind.Double: await rowGroup.WriteAsync<double>(fields[i], column.Select(v => v is null ? (double?)null : Convert.ToDouble(v, System.Globalization.CultureInfo.InvariantCulture)).ToArray(), cancellationToken: cancellationToken); break;
                        case Kind.Timestamp: await rowGroup.WriteAsync<DateTime>(fields[i], column.Select(v => v is null ? (DateTime?)null : ((DateTimeOffset)v).UtcDateTime).ToArray(), cancellationToken: cancellationToken); break;
                        default: await rowGroup.WriteAsync(fields[i], new ArraySegment<string>(column.Select(Text).ToArray()!)); break;
                    }
                }

                if (values.Count == 0)
                {
                    break;
                }
            }
        }

        await using var hashed = File.OpenRead(path);
        return Convert.ToHexStringLower(await SHA256.HashDataAsync(hashed, cancellationToken));
    }

    /// <summary>A row's values in file order: key and features, label, observed_at, then what was served (served_device empty, as for PostgreSQL's own rows).</summary>
    private static object?[] Values(SqliteTrainingSets.Candidate c) =>
        [.. c.Features, c.LabelValue, c.ObservedAt, c.Served?.Version, c.Served?.Arm, c.Served is { } s ? SqliteTrainingSets.JsonbText(s.Outputs) : null, c.Served?.ScoredAt, null];

    private static bool Fits(Kind kind, object? value) => value is null || kind switch
    {
        Kind.Int32 => value is int,
        Kind.Int64 => value is long,
        Kind.Double => value is double or long,
        Kind.Timestamp => value is DateTimeOffset,
        _ => true,
    };

    private static string? Text(object? value) => value switch
    {
        null => null,
        string s => s,
        DateTimeOffset t => t.UtcDateTime.ToString("O", System.Globalization.CultureInfo.InvariantCulture),
        _ => SqliteOutcomeReports.Text(value),
    };

    private static DataField Field(string name, Kind kind) => kind switch
    {
        Kind.Int32 => new DataField<int?>(name),
        Kind.Int64 => new DataField<long?>(name),
        Kind.Double => new DataField<double?>(name),
        Kind.Timestamp => new DateTimeDataField(name, DateTimeFormat.Timestamp, true, DateTimeTimeUnit.Micros, true),
        _ => new DataField<string>(name, true),
    };
}

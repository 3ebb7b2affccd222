using System.Security.Cryptography;
using Npgsql;
using NpgsqlTypes;
using Parquet;
using Parquet.Schema;

namespace ModelAsData.Postgres.Export;

/// <summary>
/// Writes a selection as Parquet: the columns' PostgreSQL types (read from a zero-row query) map to Parquet types —
/// boolean, int2/int4 → int32, int8 → int64, float4 → float, float8 and numeric → double, timestamps and dates →
/// UTC timestamps in microseconds, everything else (text, jsonb, …) → UTF-8 string — and the rows come from a binary
/// COPY, 100,000 per row group, so memory holds one row group at a time.
/// </summary>
internal static class ParquetCopy
{
    public const int RowGroupRows = 100_000;

    private enum Kind
    {
        Boolean,
        Int32,
        Int64,
        Single,
        Double,
        Timestamp,
        Text,
    }

    /// <summary>Writes the rows of <paramref name="selection"/> (which selects r.*) to <paramref name="path"/>; returns the file's sha256.</summary>
    public static async Task<string> WriteAsync(NpgsqlConnection connection, TrainingSetBinding binding, string selection, string path,
        PostgresTrainingSets.Progress? progress, CancellationToken cancellationToken)
    {
        var names = binding.Columns;
        var kinds = await KindsAsync(connection, selection, names, cancellationToken);
        var casts = string.Join(", ", names.Select((c, i) => $"r.{TrainingSetSql.Quote(c)}{Cast(kinds[i])}"));
        var fields = names.Select((c, i) => Field(c, kinds[i])).ToArray();
        var columns = kinds.Select(Buffer).ToArray();
        long rows = 0;
        await using (var file = new FileStream(path, FileMode.Create, FileAccess.ReadWrite, FileShare.None, 1 << 16))
        {
            await using (var writer = await ParquetWriter.CreateAsync(new ParquetSchema(fields), file, cancellationToken: cancellationToken))
            {
                await using var copy = await connection.BeginBinaryExportAsync($"COPY (SELECT {casts} FROM ({selection}) r) TO STDOUT (FORMAT binary)", cancellationToken);
                var inGroup = 0;
                while (await copy.StartRowAsync(cancellationToken) >= 0)
                {
                    for (var i = 0; i < kinds.Length; i++)
                    {
                        await ReadAsync(copy, kinds[i], columns[i], inGroup, cancellationToken);
                    }

                    inGroup++;
                    rows++;
                    if (inGroup == RowGroupRows)
                    {
                        await FlushAsync(writer, fields, kinds, columns, inGroup, cancellationToken);
                        inGroup = 0;
                        progress?.Report(rows);
                    }
                }

                if (inGroup > 0 || rows == 0)
                {
                    await FlushAsync(writer, fields, kinds, columns, inGroup, cancellationToken);
                }
            }

            progress?.Finish();
        }

        await using var hashed = File.OpenRead(path);
        return Convert.ToHexStringLower(await SHA256.HashDataAsync(hashed, cancellationToken));
    }

    private static async Task<Kind[]> KindsAsync(NpgsqlConnection connection, string selection, IReadOnlyList<string> names, CancellationToken cancellationToken)
    {
        await using var command = new NpgsqlCommand($"SELECT * FROM ({selection}) q LIMIT 0", connection);
        await using var reader = await command.ExecuteReaderAsync(System.Data.CommandBehavior.SchemaOnly, cancellationToken);
        var byName = Enumerable.Range(0, reader.FieldCount).ToDictionary(reader.GetName, reader.GetDataTypeName, StringComparer.Ordinal);
        return [.. names.Select(n => byName[n] switch
        {
            "boolean" => Kind.Boolean,
            "smallint" or "integer" => Kind.Int32,
            "bigint" => Kind.Int64,
            "real" => Kind.Single,
            "double precision" or "numeric" => Kind.Double,
            "timestamp with time zone" or "timestamp without time zone" or "date" => Kind.Timestamp,
            _ => Kind.Text,
        })];
    }

    private static string Cast(Kind kind) => kind switch
    {
        Kind.Int32 => "::int4",
        Kind.Double => "::float8",
        Kind.Timestamp => "::timestamptz",
        Kind.Text => "::text",
        _ => "",
    };

    private static DataField Field(string name, Kind kind) => kind switch
    {
        Kind.Boolean => new DataField<bool?>(name),
        Kind.Int32 => new DataField<int?>(name),
        Kind.Int64 => new DataField<long?>(name),
        Kind.Single => new DataField<float?>(name),
        Kind.Double => new DataField<double?>(name),
        Kind.Timestamp => new DateTimeDataField(name, DateTimeFormat.Timestamp, true, DateTimeTimeUnit.Micros, true),
        _ => new DataField<string>(name, true),
    };

    private static Array Buffer(Kind kind) => kind switch
    {
        Kind.Boolean => new bool?[RowGroupRows],
        Kind.Int32 => new int?[RowGroupRows],
        Kind.Int64 => new long?[RowGroupRows],
        Kind.Single => new float?[RowGroupRows],
        Kind.Double => new double?[RowGroupRows],
        Kind.Timestamp => new DateTime?[RowGroupRows],
        _ => new string?[RowGroupRows],
    };

    private static async Task ReadAsync(NpgsqlBinaryExporter copy, Kind kind, Array column, int row, CancellationToken cancellationToken)
    {
        if (copy.IsNull)
        {
            await copy.SkipAsync(cancellationToken);
            column.SetValue(null, row);
            return;
        }

        switch (kind)
        {
            case Kind.Boolean: ((bool?[])column)[row] = await copy.ReadAsync<bool>(NpgsqlDbType.Boolean, cancellationToken); break;
            case Kind.Int32: ((int?[])column)[row] = await copy.ReadAsync<int>(NpgsqlDbType.Integer, cancellationToken); break;
            case Kind.Int64: ((long?[])column)[row] = await copy.ReadAsync<long>(NpgsqlDbType.Bigint, cancellationToken); break;
            case Kind.Single: ((float?[])column)[row] = await copy.ReadAsync<float>(NpgsqlDbType.Real, cancellationToken); break;
            case Kind.Double: ((double?[])column)[row] = await copy.ReadAsync<double>(NpgsqlDbType.Double, cancellationToken); break;
            case Kind.Timestamp: ((DateTime?[])column)[row] = await copy.ReadAsync<DateTime>(NpgsqlDbType.TimestampTz, cancellationToken); break;
            default: ((string?[])column)[row] = await copy.ReadAsync<string>(NpgsqlDbType.Text, cancellationToken); break;
        }
    }

    private static async Task FlushAsync(ParquetWriter writer, DataField[] fields, Kind[] kinds, Array[] columns, int rows, CancellationToken cancellationToken)
    {
        using var group = writer.CreateRowGroup();
        for (var i = 0; i < fields.Length; i++)
        {
            switch (kinds[i])
            {
                case Kind.Boolean: await group.WriteAsync<bool>(fields[i], ((bool?[])columns[i]).AsMemory(0, rows), cancellationToken: cancellationToken); break;
                case Kind.Int32: await group.WriteAsync<int>(fields[i], ((int?[])columns[i]).AsMemory(0, rows), cancellationToken: cancellationToken); break;
                case Kind.Int64: await group.WriteAsync<long>(fields[i], ((long?[])columns[i]).AsMemory(0, rows), cancellationToken: cancellationToken); break;
                case Kind.Single: await group.WriteAsync<float>(fields[i], ((float?[])columns[i]).AsMemory(0, rows), cancellationToken: cancellationToken); break;
                case Kind.Double: await group.WriteAsync<double>(fields[i], ((double?[])columns[i]).AsMemory(0, rows), cancellationToken: cancellationToken); break;
                case Kind.Timestamp: await group.WriteAsync<DateTime>(fields[i], ((DateTime?[])columns[i]).AsMemory(0, rows), cancellationToken: cancellationToken); break;
                default: await group.WriteAsync(fields[i], new ArraySegment<string>(((string?[])columns[i])!, 0, rows)); break;
            }
        }
    }
}

using System.Globalization;
using System.Text.Json;
using Dapper;
using Microsoft.Data.Sqlite;
using Npgsql;

namespace ModelAsData.Sync;

/// <summary>
/// A pull's baselines (docs/SYNC.md "Drift of the fleet"): each pulled version's central bins are written into the
/// device file when they differ from the device's, so the device counts drift into the central bins and its pushed
/// counts add up with the central ones. A kind (inputs, outputs) the central database has no baseline of keeps the
/// device's own (e.g. a first window learned on the device). Replacing a kind's baseline deletes the device's counts
/// made in the old bins, as setting a baseline does on both stores: they no longer fit, and centrally they were
/// either dropped with the old baseline or never in its bins.
/// </summary>
internal static class DeviceBaselines
{
    /// <summary>One central profile, as mad.device_baselines returns it (properties: Dapper maps arrays to properties, not to constructor parameters).</summary>
    internal sealed class Central
    {
        public string Kind { get; init; } = "";
        public string ColumnName { get; init; } = "";
        public string Type { get; init; } = "";
        public double[]? Edges { get; init; }
        public string[]? Categories { get; init; }
        public long[] Counts { get; init; } = [];
        public long NullCount { get; init; }
        public double Spread { get; init; }
        public string Source { get; init; } = "";
        public string Reference { get; init; } = "";
        public string CreatedBy { get; init; } = "";
        public DateTime CreatedAt { get; init; }

        /// <summary>The profile's bins and counts as one comparable text (the device keeps arrays as JSON text).</summary>
        public string Fingerprint() => Fingerprint(ColumnName, Type, Edges, Categories, Counts, NullCount, Spread, Reference);

        public static string Fingerprint(string column, string type, double[]? edges, string[]? categories, long[] counts, long nulls, double spread, string reference) =>
            string.Join('\u001F', column, type, JsonSerializer.Serialize(edges), JsonSerializer.Serialize(categories), JsonSerializer.Serialize(counts),
                nulls.ToString(CultureInfo.InvariantCulture), spread.ToString("R", CultureInfo.InvariantCulture), reference);
    }

    private sealed record DeviceRow(string Kind, string ColumnName, string Type, string? Edges, string? Categories, string Counts, long NullCount, double Spread, string Reference);

    private const string CentralSql = """
        SELECT kind AS Kind, column_name AS ColumnName, type AS Type, edges AS Edges, categories AS Categories, counts AS Counts,
               null_count AS NullCount, spread AS Spread, source AS Source, reference AS Reference, created_by AS CreatedBy, created_at AS CreatedAt
        FROM mad.device_baselines(@model, @version)
        """;

    private const string DeviceSql = """
        SELECT kind AS Kind, column_name AS ColumnName, type AS Type, edges AS Edges, categories AS Categories, counts AS Counts,
               null_count AS NullCount, spread AS Spread, reference AS Reference
        FROM mad_baselines WHERE model = @model AND version = @version
        """;

    // The counts of a version's kind in the device's tables bound to the model (bare, or with an alias or version).
    private const string Replace = """
        DELETE FROM mad_baselines WHERE model = @model AND version = @version AND kind = @kind;
        DELETE FROM mad_profile_counts WHERE version = @version AND kind = @kind
          AND prediction_table IN (SELECT name FROM mad_prediction_tables WHERE model = @model OR substr(model, 1, length(@model) + 1) = @model || '@');
        """;

    private const string Insert = """
        INSERT INTO mad_baselines (model, version, kind, column_name, type, edges, categories, counts, null_count, spread, source, created_by, created_at, reference)
        VALUES (@model, @version, @Kind, @ColumnName, @Type, @edges, @categories, @counts, @NullCount, @Spread, @Source, @CreatedBy, @createdAt, @Reference)
        """;

    public static async Task<List<Central>> ReadCentralAsync(NpgsqlConnection connection, NpgsqlTransaction transaction, string model, int version, CancellationToken cancellationToken) =>
        (await connection.QueryAsync<Central>(new CommandDefinition(CentralSql, new { model, version }, transaction, cancellationToken: cancellationToken))).ToList();

    /// <summary>Writes the central profiles of each kind that differ from the device's; returns how many kinds were written.</summary>
    public static async Task<int> WriteAsync(SqliteConnection device, SqliteTransaction transaction, string model, int version, IReadOnlyList<Central> central, CancellationToken cancellationToken)
    {
        if (central.Count == 0)
        {
            return 0;
        }

        var held = (await device.QueryAsync<DeviceRow>(new CommandDefinition(DeviceSql, new { model, version }, transaction, cancellationToken: cancellationToken))).ToList();
        var changed = 0;
        foreach (var kind in central.GroupBy(c => c.Kind))
        {
            var wanted = kind.Select(c => c.Fingerprint()).Order(StringComparer.Ordinal);
            var have = held.Where(h => h.Kind == kind.Key).Select(h => Central.Fingerprint(h.ColumnName, h.Type,
                h.Edges is null ? null : JsonSerializer.Deserialize<double[]>(h.Edges), h.Categories is null ? null : JsonSerializer.Deserialize<string[]>(h.Categories),
                JsonSerializer.Deserialize<long[]>(h.Counts)!, h.NullCount, h.Spread, h.Reference)).Order(StringComparer.Ordinal);
            if (wanted.SequenceEqual(have, StringComparer.Ordinal))
            {
                continue;
            }

            await device.ExecuteAsync(new CommandDefinition(Replace, new { model, version, kind = kind.Key }, transaction, cancellationToken: cancellationToken));
            foreach (var c in kind)
            {
                await device.ExecuteAsync(new CommandDefinition(Insert, new
                {
                    model, version, c.Kind, c.ColumnName, c.Type,
                    edges = c.Edges is null ? null : JsonSerializer.Serialize(c.Edges),
                    categories = c.Categories is null ? null : JsonSerializer.Serialize(c.Categories),
                    counts = JsonSerializer.Serialize(c.Counts), c.NullCount, c.Spread, c.Source, c.CreatedBy, createdAt = SyncTime.Text(c.CreatedAt), c.Reference,
                }, transaction, cancellationToken: cancellationToken));
            }

            changed++;
        }

        return changed;
    }
}

using System.Text.Json;
using Dapper;
using Microsoft.Data.Sqlite;
using ModelAsData.Core;
using Npgsql;
using NpgsqlTypes;

namespace ModelAsData.Sync;

/// <summary>What the central database did with one prediction table's counts of one version: added them, or why it skipped them.</summary>
public sealed record ProfileCountsPushed(string PredictionTable, int Version, string Status, IReadOnlyList<string> Columns, long Counts)
{
    /// <summary>The skip, in words a device's operator can act on; null when the counts were added.</summary>
    public string? Reason => Status switch
    {
        Added => null,
        "unknown_table" => $"the central database has no prediction table '{PredictionTable}': create it there (on the same model) and push again",
        "other_model" => $"prediction table '{PredictionTable}' is bound to another model in the central database",
        "no_baseline" => $"version {Version} has no baseline in the central database for {string.Join(", ", Columns)}: set one there, pull, and score again",
        "other_bins" => $"the device counted {string.Join(", ", Columns)} of version {Version} into other bins than the central baseline's: pull again, so the device counts into the central bins",
        _ => Status,
    };

    public const string Added = "added";

    /// <summary>Skips the table's next push cannot mend by itself: its counts are sent again (the watermark stays).</summary>
    internal bool KeepsWatermark => Status is "unknown_table" or "other_model";
}

/// <summary>
/// A push's profile counts (docs/SYNC.md "Drift of the fleet"): the device's totals per prediction table, version,
/// hour, column and bin from each table's watermark on (sql/sqlite/023_profile_count_pushes.sql), binary-COPied into
/// the staging tables mad.begin_push_profile_counts made, with the bins they were counted into. The central side keeps
/// the totals per device and adds what grew, so the watermark only bounds what is sent, not what is counted.
/// </summary>
internal static class DeviceProfileCounts
{
    private const string CopyCounts =
        "COPY pg_temp.mad_push_profile_counts (prediction_table, model, version, window_start, kind, column_name, bin, count) FROM STDIN (FORMAT BINARY)";

    private const string CopyBaselines = "COPY pg_temp.mad_push_baselines (model, version, kind, column_name, type, edges, categories) FROM STDIN (FORMAT BINARY)";

    private const string Finish = """
        SELECT prediction_table AS PredictionTable, version AS Version, status AS Status, columns AS Columns, counts AS Counts
        FROM mad.finish_push_profile_counts(@deviceId)
        """;

    private sealed record CountRow(long Version, string WindowStart, string Kind, string ColumnName, long Bin, long Count);

    private sealed record BaselineRow(string Kind, string ColumnName, string Type, string? Edges, string? Categories);

    private sealed class Judged
    {
        public string PredictionTable { get; init; } = "";
        public int Version { get; init; }
        public string Status { get; init; } = "";
        public string[] Columns { get; init; } = [];
        public long Counts { get; init; }
    }

    /// <summary>The tables whose counts a push sends, and from which hour; taken before anything is read.</summary>
    public sealed record Plan(string DeviceId, string Through, IReadOnlyList<(string Table, string Model, string Since)> Tables);

    /// <summary>Reads each table's watermark. The next one is the hour before now: a refresh that took its time in that hour and commits later is sent again.</summary>
    public static async Task<Plan> PlanAsync(SqliteConnection device, string deviceId, CancellationToken cancellationToken)
    {
        var now = DateTime.UtcNow;
        var through = SyncTime.Text(new DateTime(now.Year, now.Month, now.Day, now.Hour, 0, 0, DateTimeKind.Utc).AddHours(-1));
        var tables = (await device.QueryAsync<(string Name, string Model, string? Since)>(new CommandDefinition("""
            SELECT t.name, t.model, p.pushed_through FROM mad_prediction_tables t
            LEFT JOIN mad_profile_count_pushes p ON p.device = @deviceId AND p.prediction_table = t.name
            UNION ALL
            -- predict()'s counts, under 'online:<model>' (as the central online doors'; 047 takes them).
            SELECT o.name, substr(o.name, 8), p.pushed_through FROM (SELECT DISTINCT prediction_table AS name FROM mad_profile_counts WHERE substr(prediction_table, 1, 7) = 'online:') o
            LEFT JOIN mad_profile_count_pushes p ON p.device = @deviceId AND p.prediction_table = o.name
            ORDER BY 1
            """, new { deviceId }, cancellationToken: cancellationToken)))
            .Select(t => (t.Name, ModelReference.Parse(t.Model).Model, t.Since ?? "")).ToList();
        return new Plan(deviceId, through, tables);
    }

    /// <summary>Copies the counts and their bins; returns how many count rows were sent.</summary>
    public static async Task<long> CopyAsync(SqliteConnection device, NpgsqlConnection central, Plan plan, CancellationToken cancellationToken)
    {
        long read = 0;
        var versions = new SortedSet<(string Model, int Version)>();
        await using (var importer = await central.BeginBinaryImportAsync(CopyCounts, cancellationToken))
        {
            foreach (var (table, model, since) in plan.Tables)
            {
                var rows = await device.QueryAsync<CountRow>(new CommandDefinition("""
                    SELECT version AS Version, window_start AS WindowStart, kind AS Kind, column_name AS ColumnName, bin AS Bin, count AS Count
                    FROM mad_profile_counts WHERE prediction_table = @table AND window_start >= @since
                    """, new { table, since }, cancellationToken: cancellationToken));
                foreach (var row in rows)
                {
                    await importer.StartRowAsync(cancellationToken);
                    await importer.WriteAsync(table, NpgsqlDbType.Text, cancellationToken);
                    await importer.WriteAsync(model, NpgsqlDbType.Text, cancellationToken);
                    await importer.WriteAsync(checked((int)row.Version), NpgsqlDbType.Integer, cancellationToken);
                    await importer.WriteAsync(DevicePredictions.ParseTime(row.WindowStart), NpgsqlDbType.TimestampTz, cancellationToken);
                    await importer.WriteAsync(row.Kind, NpgsqlDbType.Text, cancellationToken);
                    await importer.WriteAsync(row.ColumnName, NpgsqlDbType.Text, cancellationToken);
                    await importer.WriteAsync(checked((int)row.Bin), NpgsqlDbType.Integer, cancellationToken);
                    await importer.WriteAsync(row.Count, NpgsqlDbType.Bigint, cancellationToken);
                    versions.Add((model, checked((int)row.Version)));
                    read++;
                }
            }

            await importer.CompleteAsync(cancellationToken);
        }

        // The bins each version's counts were made in, for the central side to compare with its baseline's.
        await using (var importer = await central.BeginBinaryImportAsync(CopyBaselines, cancellationToken))
        {
            foreach (var (model, version) in versions)
            {
                var baselines = await device.QueryAsync<BaselineRow>(new CommandDefinition("""
                    SELECT kind AS Kind, column_name AS ColumnName, type AS Type, edges AS Edges, categories AS Categories
                    FROM mad_baselines WHERE model = @model AND version = @version
                    """, new { model, version }, cancellationToken: cancellationToken));
                foreach (var b in baselines)
                {
                    await importer.StartRowAsync(cancellationToken);
                    await importer.WriteAsync(model, NpgsqlDbType.Text, cancellationToken);
                    await importer.WriteAsync(version, NpgsqlDbType.Integer, cancellationToken);
                    await importer.WriteAsync(b.Kind, NpgsqlDbType.Text, cancellationToken);
                    await importer.WriteAsync(b.ColumnName, NpgsqlDbType.Text, cancellationToken);
                    await importer.WriteAsync(b.Type, NpgsqlDbType.Text, cancellationToken);
                    await WriteArrayAsync(importer, b.Edges is null ? null : JsonSerializer.Deserialize<double[]>(b.Edges), NpgsqlDbType.Array | NpgsqlDbType.Double, cancellationToken);
                    await WriteArrayAsync(importer, b.Categories is null ? null : JsonSerializer.Deserialize<string[]>(b.Categories), NpgsqlDbType.Array | NpgsqlDbType.Text, cancellationToken);
                }
            }

            await importer.CompleteAsync(cancellationToken);
        }

        return read;
    }

    /// <summary>Keeps the staged totals centrally (mad.finish_push_profile_counts): what was added, and what was skipped and why.</summary>
    public static async Task<IReadOnlyList<ProfileCountsPushed>> FinishAsync(NpgsqlConnection central, NpgsqlTransaction transaction, string deviceId, CancellationToken cancellationToken) =>
        (await central.QueryAsync<Judged>(new CommandDefinition(Finish, new { deviceId }, transaction, cancellationToken: cancellationToken)))
            .Select(j => new ProfileCountsPushed(j.PredictionTable, j.Version, j.Status, j.Columns, j.Counts)).ToList();

    /// <summary>After the central commit: each table's next push starts at the plan's hour, unless its counts were skipped for a reason that needs them sent again.</summary>
    public static async Task MarkAsync(SqliteConnection device, Plan plan, IReadOnlyList<ProfileCountsPushed> pushed, CancellationToken cancellationToken)
    {
        using var transaction = device.BeginTransaction(deferred: false);
        var now = SyncTime.Now();
        foreach (var (table, _, _) in plan.Tables.Where(t => !pushed.Any(p => p.PredictionTable == t.Table && p.KeepsWatermark)))
        {
            await device.ExecuteAsync(new CommandDefinition("""
                INSERT INTO mad_profile_count_pushes (device, prediction_table, pushed_through, pushed_at) VALUES (@device, @table, @through, @now)
                ON CONFLICT (device, prediction_table) DO UPDATE SET pushed_through = max(pushed_through, excluded.pushed_through), pushed_at = excluded.pushed_at
                """, new { device = plan.DeviceId, table, through = plan.Through, now }, transaction, cancellationToken: cancellationToken));
        }

        transaction.Commit();
    }

    private static async Task WriteArrayAsync<T>(NpgsqlBinaryImporter importer, T[]? values, NpgsqlDbType type, CancellationToken cancellationToken)
    {
        if (values is null)
        {
            await importer.WriteNullAsync(cancellationToken);
        }
        else
        {
            await importer.WriteAsync(values, type, cancellationToken);
        }
    }
}

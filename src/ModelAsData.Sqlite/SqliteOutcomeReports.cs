using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using Dapper;
using Microsoft.Data.Sqlite;
using ModelAsData.Core;
using ModelAsData.Core.Monitoring;
using ModelAsData.Core.Registry;

namespace ModelAsData.Sqlite;

/// <summary>
/// mad.performance and mad.compare on the embedded store: the served rows (mad_history, and the table's current rows)
/// and the bound source's labels are read here and graded by <see cref="OutcomeMetrics"/> and
/// <see cref="OutcomeComparison"/>, PostgreSQL's rules in-process, so both stores give the same numbers.
/// </summary>
public sealed class SqliteOutcomeReports(SqliteModelRegistry registry) : IOutcomeReports
{
    private SqliteConnection Connection => registry.Connection;

    private sealed record Binding(string Source, string KeyColumns, string LabelColumn, string ObservedAtColumn);

    public async Task<PerformanceReport> PerformanceAsync(string table, TimeSpan window, DateTimeOffset? asOf, DateTimeOffset? since = null, CancellationToken cancellationToken = default)
    {
        var (metrics, notices) = await MetricsAsync(table, window, asOf, cancellationToken, since);
        return new PerformanceReport(metrics.Select(m => m.ToRow()).ToList(), notices);
    }

    public async Task<ComparisonReport> CompareAsync(string model, string alias, string? metric, long horizon, CancellationToken cancellationToken = default)
    {
        OutcomeComparison.Validate(metric);
        var champion = await Connection.QuerySingleOrDefaultAsync<long?>(new CommandDefinition(
            "SELECT version FROM mad_aliases WHERE model = @model AND alias = @alias", new { model, alias }, cancellationToken: cancellationToken))
            ?? throw new ModelAsDataException(ErrorCode.NotFound, $"Model '{model}' has no alias '{alias}'. See its aliases with: mad models show {model}");
        var deployment = await Connection.QuerySingleOrDefaultAsync<(long? Version, double? Percent)?>(new CommandDefinition(
            "SELECT canary_version, canary_percent FROM mad_deployments WHERE model = @model AND alias = @alias", new { model, alias }, cancellationToken: cancellationToken));
        var tables = (await Connection.QueryAsync<(string Name, string Model)>(new CommandDefinition(
            "SELECT p.name, p.model FROM mad_prediction_tables p JOIN mad_outcomes o ON o.prediction_table = p.name ORDER BY p.name", cancellationToken: cancellationToken)))
            .Where(t => ModelReference.Parse(t.Model) is var r && r.Model == model && (r.Alias ?? (r.Version is null ? "production" : null)) == alias).ToList();
        var since = await CurrentSplitSinceAsync(model, alias, (int)champion, (int?)deployment?.Version, deployment?.Percent, cancellationToken);
        var rows = new List<ComparisonRow>();
        var notices = new List<string>();
        foreach (var (name, _) in tables)
        {
            var (metrics, raised) = await MetricsAsync(name, OutcomeComparison.Everything, null, cancellationToken, since);
            notices.AddRange(raised);
            rows.AddRange(OutcomeComparison.Compare(name, metrics, (int)champion, (int?)deployment?.Version, deployment?.Percent, metric, horizon));
        }

        if (tables.Count > 0 && since is { } from)
        {
            notices.Add(OutcomeComparison.CountedSince(from, model, alias, (int)champion, (int?)deployment?.Version, deployment?.Percent));
        }

        if (tables.Count == 0)
        {
            notices.Add($"No prediction table served through {model}@{alias} has outcomes bound: nothing to compare.");
        }

        return new ComparisonReport(rows, notices, since);
    }

    /// <summary>
    /// Before a refresh replaces the rows of a table with outcomes bound, they join mad_history (in the refresh's
    /// transaction), so a label observed later still grades the prediction that was served when it was observed.
    /// </summary>
    public static async Task KeepServedAsync(SqliteConnection connection, SqliteTransaction transaction, PredictionTable table, CancellationToken cancellationToken)
    {
        var bound = await connection.ExecuteScalarAsync<long>(new CommandDefinition(
            "SELECT count(*) FROM mad_outcomes WHERE prediction_table = @Name", table, transaction, cancellationToken: cancellationToken));
        if (bound > 0)
        {
            await connection.ExecuteAsync(new CommandDefinition(
                $"INSERT OR IGNORE INTO mad_history (prediction_table, key, version, arm, outputs, scored_at) SELECT @Name, * FROM ({CurrentRows(table, hasArm: true)})",
                new { table.Name }, transaction, cancellationToken: cancellationToken));
        }
    }

    /// <summary>The table's current served rows in mad_history's shape (a row that failed to score served nothing).</summary>
    private static string CurrentRows(PredictionTable table, bool hasArm) =>
        $"SELECT {KeyText("o", table.Key)}, o.model_version, {(hasArm ? "o.arm" : "'champion'")}, " +
        $"json_object({string.Join(", ", table.Columns.Select(c => $"'{c.Name.Replace("'", "''", StringComparison.Ordinal)}', o.{SqliteDatabase.Quote(c.Name)}"))}), o.scored_at " +
        $"FROM {SqliteDatabase.Quote(table.OutputTable)} o WHERE o.error IS NULL";

    /// <summary>mad.key_text in SQLite: the key columns' text joined by U+001F.</summary>
    private static string KeyText(string alias, IEnumerable<string> columns) =>
        string.Join(" || char(31) || ", columns.Select(c => $"CAST({alias}.{SqliteDatabase.Quote(c)} AS TEXT)"));

    /// <summary>
    /// When the current split began, as mad.compare (050_2) finds it: the later of the alias's last move and the first
    /// deployment change since the last one that set another champion, canary or percent. NULL without either.
    /// </summary>
    private async Task<DateTimeOffset?> CurrentSplitSinceAsync(string model, string alias, int champion, int? canary, double? percent, CancellationToken cancellationToken)
    {
        var (moved, changed) = await Connection.QuerySingleAsync<(string?, string?)>(new CommandDefinition("""
            SELECT (SELECT max(moved_at) FROM mad_alias_history WHERE model = @model AND alias = @alias),
                   (SELECT min(h.changed_at) FROM mad_deployment_history h
                    WHERE h.model = @model AND h.alias = @alias
                      AND h.id > coalesce((SELECT max(x.id) FROM mad_deployment_history x
                                           WHERE x.model = @model AND x.alias = @alias
                                             AND NOT (x.version IS @champion AND x.canary_version IS @canary AND x.canary_percent IS @percent)), 0))
            """, new { model, alias, champion, canary, percent }, cancellationToken: cancellationToken));
        DateTimeOffset? a = moved is null ? null : SqliteTime.Parse(moved), d = changed is null ? null : SqliteTime.Parse(changed);
        return a is null ? d : d is null ? a : a > d ? a : d;
    }

    private async Task<(IReadOnlyList<OutcomeMetric> Metrics, IReadOnlyList<string> Notices)> MetricsAsync(string name, TimeSpan window, DateTimeOffset? asOf,
        CancellationToken cancellationToken, DateTimeOffset? since = null)
    {
        var table = await new SqlitePredictionTables(registry).GetAsync(name, cancellationToken);
        var binding = await Connection.QuerySingleOrDefaultAsync<Binding>(new CommandDefinition(
            "SELECT source AS Source, key_columns AS KeyColumns, label_column AS LabelColumn, observed_at_column AS ObservedAtColumn FROM mad_outcomes WHERE prediction_table = @name",
            new { name }, cancellationToken: cancellationToken))
            ?? throw new ModelAsDataException(ErrorCode.NotFound,
                $"Prediction table '{name}' has no outcomes bound. Bind them: mad outcomes set {name} --source TABLE --key {string.Join(" ", table.Key)} --label COLUMN --observed-at COLUMN");

        var served = await ServedAsync(Connection, table, cancellationToken);
        var keys = JsonSerializer.Deserialize<string[]>(binding.KeyColumns)!;
        var labels = new List<ObservedOutcome>();
        await using (var command = Connection.CreateCommand())
        {
            var (label, observed) = (SqliteDatabase.Quote(binding.LabelColumn), SqliteDatabase.Quote(binding.ObservedAtColumn));
            command.CommandText = $"SELECT {KeyText("o", keys)}, o.{label}, o.{observed} FROM {SqliteDatabase.Quote(binding.Source)} o " +
                $"WHERE o.{label} IS NOT NULL AND o.{observed} IS NOT NULL AND {string.Join(" AND ", keys.Select(k => $"o.{SqliteDatabase.Quote(k)} IS NOT NULL"))}";
            await using var reader = await command.ExecuteReaderAsync(cancellationToken);
            while (await reader.ReadAsync(cancellationToken))
            {
                labels.Add(new ObservedOutcome(reader.GetString(0), Text(reader.GetValue(1)), ObservedAt(binding.Source, binding.ObservedAtColumn, reader.GetValue(2))));
            }
        }

        return OutcomeMetrics.Compute(served, labels, window, asOf, name, binding.Source, binding.LabelColumn, since);
    }

    /// <summary>What the table served: its mad_history rows and its current rows (mad.served_predictions' rows).</summary>
    internal static async Task<List<ServedPrediction>> ServedAsync(SqliteConnection connection, PredictionTable table, CancellationToken cancellationToken)
    {
        var served = new List<ServedPrediction>();
        var hasArm = await SqlitePredictionTables.HasArmAsync(connection, table.Name, cancellationToken);
        await using var command = connection.CreateCommand();
        command.CommandText = $"SELECT key, version, arm, outputs, scored_at FROM mad_history WHERE prediction_table = @Name UNION {CurrentRows(table, hasArm)}";
        command.Parameters.AddWithValue("@Name", table.Name);
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        while (await reader.ReadAsync(cancellationToken))
        {
            served.Add(new ServedPrediction(reader.GetString(0), reader.GetInt32(1), reader.GetString(2), JsonNode.Parse(reader.GetString(3))!.AsObject(),
                SqliteTime.Parse(reader.GetString(4))));
        }

        return served;
    }

    /// <summary>mad.key_text of <paramref name="columns"/> of the row alias, as SQL.</summary>
    internal static string KeyTextSql(string alias, IEnumerable<string> columns) => KeyText(alias, columns);

    /// <summary>A label as PostgreSQL's ::text spells it: integers plainly, reals in their shortest round-trip form.</summary>
    internal static string Text(object value) => value switch
    {
        double d => d.ToString("R", CultureInfo.InvariantCulture),
        _ => Convert.ToString(value, CultureInfo.InvariantCulture) ?? "",
    };

    /// <summary>When a label was observed: ISO-8601 text (UTC when it names no zone) or Unix seconds, as `mad sync push` reads it.</summary>
    internal static DateTimeOffset ObservedAt(string source, string column, object value) => value switch
    {
        string s when DateTimeOffset.TryParse(s, CultureInfo.InvariantCulture, DateTimeStyles.AdjustToUniversal | DateTimeStyles.AssumeUniversal, out var at) => at,
        long seconds => DateTimeOffset.UnixEpoch.AddSeconds(seconds),
        double seconds => DateTimeOffset.UnixEpoch.AddSeconds(seconds),
        _ => throw new ModelAsDataException(ErrorCode.InvalidArgument,
            $"Outcome source '{source}' column {column} holds '{value}', which is not a time (ISO-8601 text or Unix seconds). Fix the row, or bind another column with mad outcomes set."),
    };
}

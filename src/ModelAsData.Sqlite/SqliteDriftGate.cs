using Dapper;
using ModelAsData.Core.Monitoring;

namespace ModelAsData.Sqlite;

/// <summary>
/// The drift gate of the embedded store (sql/sqlite/025_drift_gate.sql), deciding as PostgreSQL's mad.gate_drift
/// (044_1) with <see cref="DriftGate"/>: the canary version's input counts since the canary started, in every
/// prediction table served through model@alias and in predict()'s ('online:&lt;model&gt;'), as one window to the end
/// of the current hour, each column judged once it has gate_min_rows rows, and the metrics the drift report computes
/// (<see cref="DriftEvaluator"/>). SQLite has no rolling steps, so <see cref="SqliteDeployments.PromoteAsync"/> asks it.
/// </summary>
internal static class SqliteDriftGate
{
    /// <summary>Why the canary of model@alias fails the gate; null when the gate is off, there is no canary, or it passes.</summary>
    public static async Task<string?> FailureAsync(SqliteModelRegistry registry, string model, string alias, int canary, CancellationToken cancellationToken)
    {
        var connection = registry.Connection;
        if (await connection.ExecuteScalarAsync<long>(new CommandDefinition(
                "SELECT count(*) FROM mad_drift_gates WHERE model = @model AND alias = @alias", new { model, alias }, cancellationToken: cancellationToken)) == 0)
        {
            return null;
        }

        // The canary's traffic: since the canary started (its last 'canary' change), as 044_1 reads it.
        var started = await connection.ExecuteScalarAsync<string?>(new CommandDefinition(
            "SELECT max(changed_at) FROM mad_deployment_history WHERE model = @model AND alias = @alias AND kind = 'canary'",
            new { model, alias }, cancellationToken: cancellationToken));
        var since = started is null ? DateTimeOffset.UtcNow : SqliteTime.Parse(started);
        var minRows = long.Parse(await connection.ExecuteScalarAsync<string?>(new CommandDefinition(
            "SELECT value FROM mad_settings WHERE name = 'gate_min_rows'", cancellationToken: cancellationToken)) ?? "100", System.Globalization.CultureInfo.InvariantCulture);

        var sources = (await connection.QueryAsync<string>(new CommandDefinition(SqliteDeploymentSql.TablesServedThrough,
            new { model, reference = $"{model}@{alias}", bare = alias == "production" }, cancellationToken: cancellationToken))).ToList();
        sources.Add(SqlitePredictCounts.OnlineTable(model));
        sources.Sort(StringComparer.Ordinal);

        var monitoring = new SqliteMonitoring(registry);
        var first = new DateTimeOffset(since.UtcDateTime.Year, since.UtcDateTime.Month, since.UtcDateTime.Day, since.UtcDateTime.Hour, 0, 0, TimeSpan.Zero);
        var now = DateTimeOffset.UtcNow;
        var window = new DateTimeOffset(now.UtcDateTime.Year, now.UtcDateTime.Month, now.UtcDateTime.Day, now.UtcDateTime.Hour, 0, 0, TimeSpan.Zero) + TimeSpan.FromHours(1) - first;
        var columns = new List<DriftGateColumn>();
        foreach (var source in sources)
        {
            foreach (var c in await monitoring.CountsAsync(source, first, window, cancellationToken))
            {
                var rows = c.Current.Sum() + c.CurrentNull;
                if (c.Version == canary && c.Baseline.Kind == ProfileKind.Input && rows >= minRows)
                {
                    columns.Add(new DriftGateColumn(source, c.Baseline.Column, DriftEvaluator.Evaluate(c.Baseline, c.Current, c.CurrentNull), c.Baseline.Rows, rows));
                }
            }
        }

        return DriftGate.Failure(DriftGate.Tests(columns), canary, since);
    }
}

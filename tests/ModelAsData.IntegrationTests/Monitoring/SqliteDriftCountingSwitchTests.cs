using Dapper;
using Microsoft.Data.Sqlite;
using ModelAsData.IntegrationTests.Batch;
using ModelAsData.Sqlite;

namespace ModelAsData.IntegrationTests.Monitoring;

/// <summary>
/// The embedded store's counting switch (sql/sqlite/025_drift_gate.sql), as DriftCountingSwitchTests on PostgreSQL
/// (026_4): with <c>drift_counting = 0</c> neither door (refresh, predict()) writes profile counts though the version
/// has a baseline; turned on again, the refresh counts from its next run and predict() from its next flush. SQLite
/// does not stream, so these are its doors.
/// </summary>
public sealed class SqliteDriftCountingSwitchTests
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact(Timeout = 120_000)]
    public async Task Off_no_door_counts_and_on_again_every_door_counts()
    {
        var path = Path.Combine(Path.GetTempPath(), $"mad-counting-switch-{Guid.NewGuid():N}.db");
        try
        {
            await using var registry = await SqliteModelRegistry.OpenAsync(path, Ct);
            await registry.PushAsync("iris", TestModels.Bytes("skl2onnx_rf_iris.onnx"), [], Ct);
            await DriftRows.CreateSqliteAsync(registry.Connection, "flowers", 500, seed: 41);
            var tables = new SqlitePredictionTables(registry);
            await tables.CreateAsync(new PredictionTableSpec("mapping", "flowers", ["id"], "iris", Core.FeatureMapping.Parse(BatchTables.IrisFeatures)), Ct); // never refreshed
            await new SqliteMonitoring(registry).SetBaselineAsync("iris", 1, "flowers", null, Ct);
            await using var connection = new SqliteConnection($"Data Source={path};Pooling=False");
            await connection.OpenAsync(Ct);
            SqlitePredictFunctions.Register(connection);

            await SwitchAsync(registry, on: false);
            Assert.Equal((0, 0), await DoorsScoreAsync(registry, tables, connection, "scores_off"));

            await SwitchAsync(registry, on: true);
            Assert.Equal((500, 120), await DoorsScoreAsync(registry, tables, connection, "scores_on")); // every row the refresh scored, each predict() row
        }
        finally
        {
            SqliteConnection.ClearAllPools();
            File.Delete(path);
        }
    }

    /// <summary>A new prediction table's refresh scores every row of flowers; predict() scores 120 of them, flushed. Returns the rows each door counted.</summary>
    private static async Task<(long Refresh, long Predict)> DoorsScoreAsync(SqliteModelRegistry registry, SqlitePredictionTables tables, SqliteConnection connection, string name)
    {
        await tables.CreateAsync(new PredictionTableSpec(name, "flowers", ["id"], "iris", Core.FeatureMapping.Parse(BatchTables.IrisFeatures)), Ct);
        var before = await CountedAsync(registry, "online:iris");
        await tables.RefreshAsync(name, cancellationToken: Ct);
        Assert.Equal(120, await connection.ExecuteScalarAsync<long>(
            "SELECT count(predict('iris', sepal_length, sepal_width, petal_length, petal_width)) FROM flowers WHERE id <= 120"));
        SqlitePredictFunctions.FlushDriftCounts(connection);
        return (await CountedAsync(registry, name), await CountedAsync(registry, "online:iris") - before);
    }

    private static Task SwitchAsync(SqliteModelRegistry registry, bool on) =>
        registry.Connection.ExecuteAsync("UPDATE mad_settings SET value = @value WHERE name = 'drift_counting'", new { value = on ? "1" : "0" });

    /// <summary>Rows counted for sepal_length of the table (or 'online:iris'), all hours.</summary>
    private static Task<long> CountedAsync(SqliteModelRegistry registry, string table) =>
        registry.Connection.ExecuteScalarAsync<long>(
            "SELECT coalesce(sum(count), 0) FROM mad_profile_counts WHERE prediction_table = @table AND kind = 'input' AND column_name = 'sepal_length'", new { table });
}

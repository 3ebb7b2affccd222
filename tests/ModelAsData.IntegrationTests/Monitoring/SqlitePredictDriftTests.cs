using Dapper;
using Microsoft.Data.Sqlite;
using ModelAsData.IntegrationTests.Batch;
using ModelAsData.Sqlite;

namespace ModelAsData.IntegrationTests.Monitoring;

/// <summary>
/// The embedded predict() SQL function counts its rows for drift under 'online:&lt;model&gt;' (SqlitePredictCounts):
/// in memory while the caller's statements run, written at SqlitePredictFunctions.FlushDriftCounts and when the
/// connection closes, so a query that scores rows while writing (CREATE TABLE … AS SELECT predict(…)) is safe.
/// </summary>
public sealed class SqlitePredictDriftTests
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact(Timeout = 120_000)]
    public async Task Rows_scored_by_predict_are_counted_at_a_flush_and_when_the_connection_closes()
    {
        var path = Path.Combine(Path.GetTempPath(), $"mad-predict-drift-{Guid.NewGuid():N}.db");
        try
        {
            await using var registry = await SqliteModelRegistry.OpenAsync(path, Ct);
            await registry.PushAsync("iris", TestModels.Bytes("skl2onnx_rf_iris.onnx"), [], Ct);
            await DriftRows.CreateSqliteAsync(registry.Connection, "flowers", 1_000, seed: 51);
            await DriftRows.CreateSqliteAsync(registry.Connection, "shifted", 300, seed: 52, shift: 1.5);
            var tables = new SqlitePredictionTables(registry);
            await tables.CreateAsync(new PredictionTableSpec("scores", "flowers", ["id"], "iris", Core.FeatureMapping.Parse(BatchTables.IrisFeatures)), Ct);
            var monitoring = new SqliteMonitoring(registry);
            await monitoring.SetBaselineAsync("iris", 1, "flowers", null, Ct);

            await using (var connection = new SqliteConnection($"Data Source={path};Pooling=False"))
            {
                await connection.OpenAsync(Ct);
                SqlitePredictFunctions.Register(connection);
                Assert.Equal(300, await connection.ExecuteScalarAsync<long>(
                    "SELECT count(predict('iris', sepal_length, sepal_width, petal_length, petal_width)) FROM shifted"));
                Assert.Equal(0, await CountedAsync(registry)); // in memory while statements run

                SqlitePredictFunctions.FlushDriftCounts(connection);
                var drift = await monitoring.DriftAsync("online:iris", null, TimeSpan.FromDays(1), Ct);
                var psi = drift.Where(r => r.Kind == "input" && r.Metric == "psi").ToDictionary(r => r.Column);
                Assert.Equal(4, psi.Count);
                Assert.All(psi.Values, r => Assert.Equal((1, 300L), (r.Version, r.NCurrent)));
                Assert.True(psi["sepal_length"].Drifted, $"sepal_length psi {DriftRows.Describe(psi["sepal_length"].Value)}"); // shifted by 1.5
                Assert.False(psi["petal_width"].Drifted);
                Assert.Contains(drift, r => r.Kind == "output" && r.NCurrent == 300); // the answers too

                // Scoring inside a statement that writes: the counts wait until the connection closes.
                await connection.ExecuteAsync("CREATE TABLE answers AS SELECT id, predict('iris', '[' || sepal_length || ',' || sepal_width || ',' || petal_length || ',' || petal_width || ']') AS label FROM flowers WHERE id <= 200");
                Assert.Equal(300, await CountedAsync(registry));
            }

            Assert.Equal(500, await CountedAsync(registry));
        }
        finally
        {
            SqliteConnection.ClearAllPools();
            File.Delete(path);
        }
    }

    /// <summary>predict() rows counted in sepal_length, nulls included, all hours.</summary>
    private static Task<long> CountedAsync(SqliteModelRegistry registry) =>
        registry.Connection.ExecuteScalarAsync<long>(
            "SELECT coalesce(sum(count), 0) FROM mad_profile_counts WHERE prediction_table = 'online:iris' AND kind = 'input' AND column_name = 'sepal_length'");
}

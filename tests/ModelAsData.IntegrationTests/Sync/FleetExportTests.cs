using System.Globalization;
using Dapper;
using Microsoft.Data.Sqlite;
using ModelAsData.Core.Export;
using ModelAsData.IntegrationTests.Deployments;
using ModelAsData.IntegrationTests.Hostile;
using ModelAsData.Postgres.Export;
using ModelAsData.Postgres.Jobs;
using ModelAsData.Sqlite;
using ModelAsData.Sync;

namespace ModelAsData.IntegrationTests.Sync;

/// <summary>
/// `mad export training-set` of a table whose outcomes include the fleet's (real PostgreSQL, a real SQLite device
/// file): a device's labelled row, keyed `device` U+001E `key`, gets the central source row of its key (key and
/// feature columns), the device's served prediction and its device id, and lands on the same side of the holdout as
/// the central row of the same key.
/// </summary>
public sealed class FleetExportTests(PostgresDatabase database) : DatabaseTests(database), IAsyncLifetime
{
    private readonly string _directory = Directory.CreateTempSubdirectory("mad-fleet-export-").FullName;
    private readonly string _path = Path.Combine(Path.GetTempPath(), $"mad-fleet-export-{Guid.NewGuid():N}.db");
    private HostileRoles _roles = null!;
    private string _device = "";

    public async ValueTask InitializeAsync()
    {
        _roles = new HostileRoles(Database);
        var (device, _) = await _roles.LoginAsync("device", "IN ROLE mad_user, mad_device");
        _device = Database.ConnectionStringFor(device, HostileRoles.Password);
    }

    public async ValueTask DisposeAsync()
    {
        await _roles.DisposeAsync();
        SqliteConnection.ClearAllPools();
        foreach (var file in new[] { _path, _path + "-wal", _path + "-shm", _path + ".sync-lock" })
        {
            File.Delete(file);
        }

        Directory.Delete(_directory, recursive: true);
    }

    [Fact(Timeout = 180_000)]
    public async Task A_devices_labelled_rows_export_with_the_central_features_of_their_keys_and_the_devices_prediction()
    {
        var model = await PostgresDeploymentTests.ThreeReadyVersionsAsync(new PostgresModelRegistry(Database.DataSource));
        await Database.DataSource.ExecuteAsync("SELECT mad.deploy(@model, 'production', 1)", new { model });
        var name = Sql.UniqueName("fleet");
        var source = await Batch.BatchTables.CreateFlowersAsync(Database.DataSource, 2_000);
        await Batch.BatchTables.CreateAsync(new PostgresPredictionTables(new PostgresModelRegistry(Database.DataSource)), name, source, model + "@production");
        // Centrally: keys 1-100 served by version 1 in 2029 and labelled in 2030; the fleet's labels through the view.
        await Database.DataSource.ExecuteAsync($"""
            CREATE TABLE public.{name}_events (id bigint, label text, observed_at timestamptz);
            INSERT INTO public.{name}_events SELECT g, 'central', '2030-01-01' FROM generate_series(1, 100) g;
            CREATE VIEW public.{name}_labels AS
              SELECT id::text AS id, label, observed_at FROM public.{name}_events
              UNION ALL SELECT served_key, label, observed_at FROM mad.edge_outcomes WHERE prediction_table = '{name}';
            SELECT mad.set_outcomes('{name}', source => 'public.{name}_labels', key => ARRAY['id'], label => 'label', observed_at => 'observed_at');
            INSERT INTO mad_history.{name} (key, version, arm, outputs, scored_at)
            SELECT g::text, 1, 'champion', jsonb_build_object('label', '0'), '2029-01-01' FROM generate_series(1, 100) g;
            """);

        // On the device: the table scored offline, keys 1-500 labelled there, pushed.
        var deviceId = "shop-" + Guid.NewGuid().ToString("N")[..8];
        await ModelSync.PullAsync(_device, _path, new PullOptions { Models = [model + "@production"], Device = deviceId }, Ct);
        await using (var registry = await SqliteModelRegistry.OpenAsync(_path, Ct))
        {
            await registry.Connection.ExecuteAsync("""
                CREATE TABLE flowers (id INTEGER PRIMARY KEY, sepal_length REAL, sepal_width REAL, petal_length REAL, petal_width REAL);
                WITH RECURSIVE g(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM g WHERE i < 2000)
                INSERT INTO flowers SELECT i, 4.3 + (i % 37) * 0.1, 2.0 + (i % 23) * 0.1, 1.0 + (i % 59) * 0.1, 0.1 + (i % 25) * 0.1 FROM g;
                CREATE TABLE events (id INTEGER PRIMARY KEY, label TEXT, observed_at TEXT);
                INSERT INTO events SELECT id, 'device', '2030-01-01T00:00:00Z' FROM flowers WHERE id <= 500;
                """);
            var tables = new SqlitePredictionTables(registry);
            await tables.CreateAsync(new(name, "flowers", ["id"], model + "@production", FeatureMapping.Parse(Batch.BatchTables.IrisFeatures)), Ct);
            await tables.RefreshAsync(name, cancellationToken: Ct);
            await DeviceOutcomes.SetAsync(registry.Connection, new OutcomeBinding(name, "events", ["id"], "label", "observed_at"), Ct);
        }

        var pushed = await ModelSync.PushAsync(_path, _device, cancellationToken: Ct);
        Assert.Equal(500, pushed.OutcomesAdded);

        var out_ = Path.Combine(_directory, "fleet.csv");
        var manifest = await new PostgresTrainingSets(Database.DataSource).ExportAsync(new TrainingSetRequest
        {
            PredictionTable = name, Out = out_, Format = TrainingSetFormat.Csv, Holdout = 0.3, Seed = 7, Cutoff = new DateTimeOffset(2031, 1, 1, 0, 0, 0, TimeSpan.Zero),
        }, cancellationToken: Ct);

        Assert.Equal(0, manifest.Eligible.LabelsWithoutSourceRow);
        Assert.Equal(0, manifest.Eligible.RowsWithoutPrediction);
        var training = Read(out_).Select(r => r with { Holdout = false });
        var holdout = Read(TrainingSetFiles.Holdout(out_)).Select(r => r with { Holdout = true });
        var rows = training.Concat(holdout).ToList();
        Assert.Equal(600, rows.Count);
        var features = (await Database.DataSource.QueryAsync<(long Id, float SepalLength, float SepalWidth)>($"SELECT id, sepal_length, sepal_width FROM public.{source}"))
            .ToDictionary(f => f.Id);
        var fleet = rows.Where(r => r.Device == deviceId).ToList();
        Assert.Equal(Enumerable.Range(1, 500).Select(i => (long)i), fleet.Select(r => r.Id).Order());
        Assert.All(fleet, r => Assert.Equal(("device", features[r.Id].SepalLength, features[r.Id].SepalWidth), (r.Label, r.SepalLength, r.SepalWidth)));
        // The device's prediction, as it served it (pushed to mad.edge_predictions), not the central one.
        var served = (await Database.DataSource.QueryAsync<(string Key, string Outputs)>("SELECT key, outputs::text FROM mad.edge_predictions WHERE device = @deviceId", new { deviceId }))
            .ToDictionary(s => long.Parse(s.Key, CultureInfo.InvariantCulture), s => s.Outputs);
        Assert.All(fleet, r => Assert.Equal(served[r.Id], r.ServedOutputs));
        var central = rows.Where(r => r.Device == "").ToList();
        Assert.Equal(Enumerable.Range(1, 100).Select(i => (long)i), central.Select(r => r.Id).Order());
        Assert.All(central, r => Assert.Equal(("central", """{"label": "0"}"""), (r.Label, r.ServedOutputs)));
        // One source row, one side: a key labelled centrally and on the device is in the same file both times.
        Assert.All(central, c => Assert.Equal(c.Holdout, fleet.Single(f => f.Id == c.Id).Holdout));
        Assert.InRange(rows.Count(r => r.Holdout), 100, 260);
    }

    private sealed record Row(long Id, float SepalLength, float SepalWidth, string Label, string ServedOutputs, string Device, bool Holdout = false);

    /// <summary>A file's rows: the key and features by position, served_outputs (the one quoted field), and the last column, served_device.</summary>
    private static List<Row> Read(string path)
    {
        var lines = File.ReadAllLines(path);
        Assert.Equal("id,sepal_length,sepal_width,petal_length,petal_width,label,observed_at,served_version,served_arm,served_outputs,served_at,served_device", lines[0]);
        return [.. lines.Skip(1).Select(l =>
        {
            var f = l.Split(',');
            var outputs = l[(l.IndexOf('"', StringComparison.Ordinal) + 1)..l.LastIndexOf('"')].Replace("\"\"", "\"", StringComparison.Ordinal);
            return new Row(long.Parse(f[0], CultureInfo.InvariantCulture), float.Parse(f[1], CultureInfo.InvariantCulture), float.Parse(f[2], CultureInfo.InvariantCulture),
                f[5], outputs, f[^1]);
        })];
    }
}

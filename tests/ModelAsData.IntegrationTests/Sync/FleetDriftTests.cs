using Dapper;
using Microsoft.Data.Sqlite;
using ModelAsData.IntegrationTests.Deployments;
using ModelAsData.IntegrationTests.Hostile;
using ModelAsData.Postgres.Jobs;
using ModelAsData.Sqlite;
using ModelAsData.Sync;

namespace ModelAsData.IntegrationTests.Sync;

/// <summary>
/// Drift of the fleet (047, SQLite 023) against a real PostgreSQL and real SQLite files: a pull brings the central
/// baseline, the device counts into its bins, and a push adds the device's counts to mad.drift once (pushing twice
/// adds nothing, an hour pushed again adds only what grew), per device with SET mad.device; counts in other bins or of
/// a table the central database lacks are skipped and said, and sent again once that is mended; a version the
/// central database does not hold refuses the push whole.
/// </summary>
public sealed class FleetDriftTests(PostgresDatabase database) : DatabaseTests(database), IAsyncLifetime
{
    private readonly List<string> _files = [];
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
        foreach (var file in _files.SelectMany(f => new[] { f, f + "-wal", f + "-shm", f + ".sync-lock" }))
        {
            File.Delete(file);
        }
    }

    private string NewDeviceFile()
    {
        var path = Path.Combine(Path.GetTempPath(), $"mad-fleet-{Guid.NewGuid():N}.db");
        _files.Add(path);
        return path;
    }

    private static string DeviceId() => "shop-" + Guid.NewGuid().ToString("N")[..8];

    /// <summary>Centrally: a model (production at 1), a prediction table on it and version 1's baseline of 2,000 flowers.</summary>
    private async Task<(string Model, string Table, string Source)> CentralAsync(string? name = null)
    {
        var model = await PostgresDeploymentTests.ThreeReadyVersionsAsync(new PostgresModelRegistry(Database.DataSource));
        await Database.DataSource.ExecuteAsync("SELECT mad.deploy(@model, 'production', 1)", new { model });
        var source = await Batch.BatchTables.CreateFlowersAsync(Database.DataSource, 2_000);
        name ??= Sql.UniqueName("fleet");
        await Batch.BatchTables.CreateAsync(new PostgresPredictionTables(new PostgresModelRegistry(Database.DataSource)), name, source, model + "@production");
        await Database.DataSource.ExecuteAsync($"SELECT mad.set_baseline(@model, 1, 'public.{source}')", new { model });
        return (model, name, source);
    }

    /// <summary>On the device: 2,000 flowers, whose lengths are shifted by <paramref name="shift"/>, scored (again) into the table.</summary>
    private static async Task ScoreAsync(string path, string model, string table, double shift = 0)
    {
        await using var registry = await SqliteModelRegistry.OpenAsync(path, Ct);
        await registry.Connection.ExecuteAsync($"""
            CREATE TABLE IF NOT EXISTS flowers (id INTEGER PRIMARY KEY, sepal_length REAL, sepal_width REAL, petal_length REAL, petal_width REAL);
            WITH RECURSIVE g(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM g WHERE i < 2000)
            INSERT OR REPLACE INTO flowers SELECT i, 4.3 + (i % 37) * 0.1 + {shift.ToString(System.Globalization.CultureInfo.InvariantCulture)}, 2.0 + (i % 23) * 0.1, 1.0 + (i % 59) * 0.1, 0.1 + (i % 25) * 0.1 FROM g;
            """);
        var tables = new SqlitePredictionTables(registry);
        if (await registry.Connection.ExecuteScalarAsync<long>("SELECT count(*) FROM mad_prediction_tables WHERE name = @table", new { table }) == 0)
        {
            await tables.CreateAsync(new(table, "flowers", ["id"], model + "@production", FeatureMapping.Parse(Batch.BatchTables.IrisFeatures)), Ct);
        }

        await tables.RefreshAsync(table, cancellationToken: Ct);
    }

    /// <summary>mad.drift's psi rows of a table: (version, column) → (rows counted, value), optionally of one device.</summary>
    private async Task<Dictionary<(int, string), (long N, double? Psi)>> CentralDriftAsync(string table, string? device = null)
    {
        var set = device is null ? "" : $"SET mad.device = '{device}'; ";
        var rows = await Database.DataSource.QueryAsync<(int Version, string Column, long N, double? Value)>(
            $"{set}SELECT version, \"column\", n_current, value FROM mad.drift('{table}') WHERE metric = 'psi'");
        return rows.ToDictionary(r => (r.Version, r.Column), r => (r.N, r.Value));
    }

    /// <summary>The device's own mad.drift, in the same shape.</summary>
    private static async Task<Dictionary<(int, string), (long N, double? Psi)>> DeviceDriftAsync(string path, string table)
    {
        await using var registry = await SqliteModelRegistry.OpenAsync(path, Ct);
        var rows = await new SqliteMonitoring(registry).DriftAsync(table, null, TimeSpan.FromDays(1), Ct);
        return rows.Where(r => r.Metric == "psi").ToDictionary(r => (r.Version, r.Column), r => (r.NCurrent, r.Value));
    }

    [Fact(Timeout = 180_000)]
    public async Task A_push_adds_the_devices_counts_to_the_central_drift_once_and_per_device()
    {
        var (model, table, _) = await CentralAsync();
        var path = NewDeviceFile();
        var deviceId = DeviceId();

        var pulled = await ModelSync.PullAsync(_device, path, new PullOptions { Models = [model + "@production"], Device = deviceId }, Ct);
        Assert.Equal(1, pulled.BaselinesChanged); // version 1's inputs
        Assert.Equal(0, (await ModelSync.PullAsync(_device, path, new PullOptions { Models = [model + "@production"] }, Ct)).BaselinesChanged);
        await ScoreAsync(path, model, table, shift: 0.7);

        var first = await ModelSync.PushAsync(path, _device, cancellationToken: Ct);
        var second = await ModelSync.PushAsync(path, _device, cancellationToken: Ct);

        // Every row counted once per profiled column (4), nothing skipped; the second push adds nothing.
        Assert.Equal(4 * 2_000, first.ProfileCountsAdded);
        Assert.All(first.ProfileCounts, p => Assert.Equal(ProfileCountsPushed.Added, p.Status));
        Assert.Equal(0, second.ProfileCountsAdded);
        var device = await DeviceDriftAsync(path, table);
        var central = await CentralDriftAsync(table);
        Assert.Equal(4, device.Count);
        Assert.All(device.Values, d => Assert.Equal(2_000, d.N));
        // The same counts in the same bins: the central drift is the device's, value for value.
        Assert.Equal(device.Keys.Order(), central.Keys.Order());
        foreach (var (key, d) in device)
        {
            Assert.Equal(d.N, central[key].N);
            Assert.Equal(d.Psi!.Value, central[key].Psi!.Value, 9);
        }

        Assert.True(central[(1, "sepal_length")].Psi > central[(1, "sepal_width")].Psi, "the shifted column drifts more");
        Assert.Equal(central, await CentralDriftAsync(table, deviceId));
        // The same from the CLI: --device narrows mad monitor drift to the device (its shifted column drifts: exit 3), or to a device with no rows.
        var one = await Mad("monitor", "drift", table, "--db", Database.ConnectionString, "--device", deviceId, "--all");
        Assert.True(one.Code == 3, one.Output);
        Assert.Contains("0 window(s) without rows", one.Output, StringComparison.Ordinal);
        var none = await Mad("monitor", "drift", table, "--db", Database.ConnectionString, "--device", "shop-elsewhere");
        Assert.True(none.Code == 0, none.Output);
        Assert.Contains("1 window(s) without rows", none.Output, StringComparison.Ordinal);
        foreach (var (db, id, words) in new[] { (path, deviceId, "is a device file"), (Database.ConnectionString, "shop 17 -c search_path=evil", "Invalid device id") })
        {
            var refused = await Mad("monitor", "drift", table, "--db", db, "--device", id);
            Assert.True(refused.Code != 0 && refused.Output.Contains(words, StringComparison.Ordinal), refused.Output);
        }

        Assert.All((await CentralDriftAsync(table, "shop-elsewhere")).Values, d => Assert.Equal(0, d.N));

        // The open hour scored again: only what grew is added, and the second push of it adds nothing.
        await ScoreAsync(path, model, table, shift: 0.7);
        var third = await ModelSync.PushAsync(path, _device, cancellationToken: Ct);
        Assert.Equal(4 * 2_000, third.ProfileCountsAdded);
        Assert.Equal(0, (await ModelSync.PushAsync(path, _device, cancellationToken: Ct)).ProfileCountsAdded);
        Assert.All((await CentralDriftAsync(table)).Values, c => Assert.Equal(4_000, c.N));
        Assert.Equal(4 * 4_000, await Database.DataSource.ScalarAsync<long>(
            "SELECT sum(count) FROM mad.edge_profile_counts WHERE device = @deviceId AND prediction_table = @table", new { deviceId, table }));

        var cli = await Mad("sync", "push", "--from", path, "--to", _device);
        Assert.True(cli.Code == 0, cli.Output);
        Assert.Contains("profile-count row(s) read, 0 count(s) new.", cli.Output, StringComparison.Ordinal);
    }

    [Fact(Timeout = 180_000)]
    public async Task Counts_in_other_bins_or_of_a_table_the_center_lacks_are_skipped_and_sent_once_that_is_mended()
    {
        var (model, table, source) = await CentralAsync();
        var path = NewDeviceFile();
        var deviceId = DeviceId();
        await ModelSync.PullAsync(_device, path, new PullOptions { Models = [model + "@production"], Device = deviceId }, Ct);
        await ScoreAsync(path, model, table);

        // The central baseline replaced after the pull, with other bins for sepal_length (the other columns' are the same).
        await Database.DataSource.ExecuteAsync($$"""SELECT mad.set_baseline(@model, 1, 'public.{{source}}', bins => '{"sepal_length": [5, 6, 7]}')""", new { model });
        var stale = (await ModelSync.PushAsync(path, _device, cancellationToken: Ct)).ProfileCounts.ToDictionary(p => p.Status);

        Assert.Equal(2, stale.Count);
        Assert.Equal(["petal_length", "petal_width", "sepal_width"], stale[ProfileCountsPushed.Added].Columns);
        Assert.Equal(3 * 2_000L, stale[ProfileCountsPushed.Added].Counts);
        Assert.Equal(["sepal_length"], stale["other_bins"].Columns);
        Assert.Equal(2_000L, stale["other_bins"].Counts);
        Assert.Contains("pull again", stale["other_bins"].Reason, StringComparison.Ordinal);
        Assert.Equal(0, (await CentralDriftAsync(table))[(1, "sepal_length")].N);

        // Pulled again: the new bins replace the old ones and the counts made in them.
        var pulled = await ModelSync.PullAsync(_device, path, new PullOptions { Models = [model + "@production"] }, Ct);
        Assert.Equal(1, pulled.BaselinesChanged);
        await using (var file = await SqliteDatabase.OpenAsync(path, Ct))
        {
            Assert.Equal(0, await file.ExecuteScalarAsync<long>("SELECT count(*) FROM mad_profile_counts WHERE prediction_table = @table", new { table }));
            Assert.Equal("[5,6,7]", await file.ExecuteScalarAsync<string>("SELECT edges FROM mad_baselines WHERE model = @model AND version = 1 AND column_name = 'sepal_length'", new { model }));
        }

        // Scored again, and into a table the central database does not have yet.
        await ScoreAsync(path, model, table);
        var unknown = Sql.UniqueName("not_yet");
        await ScoreAsync(path, model, unknown);
        var mended = await ModelSync.PushAsync(path, _device, cancellationToken: Ct);

        // sepal_length is new in its new bins; the other columns' totals (2,000 again after the pull's delete) are not more than the center kept.
        var added = Assert.Single(mended.ProfileCounts, p => p.PredictionTable == table);
        Assert.Equal((ProfileCountsPushed.Added, 2_000L), (added.Status, added.Counts));
        Assert.Equal(await DeviceDriftAsync(path, table), await CentralDriftAsync(table));
        var missing = Assert.Single(mended.ProfileCounts, p => p.PredictionTable == unknown);
        Assert.Equal(("unknown_table", 4 * 2_000L), (missing.Status, missing.Counts));
        Assert.Contains($"has no prediction table '{unknown}'", missing.Reason, StringComparison.Ordinal);

        // Created centrally: the table's counts were held back (no watermark), so the next push sends and adds them.
        await using (var file = await SqliteDatabase.OpenAsync(path, Ct))
        {
            Assert.Equal(0, await file.ExecuteScalarAsync<long>("SELECT count(*) FROM mad_profile_count_pushes WHERE prediction_table = @unknown", new { unknown }));
        }

        await Batch.BatchTables.CreateAsync(new PostgresPredictionTables(new PostgresModelRegistry(Database.DataSource)), unknown, source, model + "@production");
        var late = await ModelSync.PushAsync(path, _device, cancellationToken: Ct);
        var sent = Assert.Single(late.ProfileCounts, p => p.PredictionTable == unknown);
        Assert.Equal((ProfileCountsPushed.Added, 4 * 2_000L), (sent.Status, sent.Counts));
        Assert.All((await CentralDriftAsync(unknown)).Values, c => Assert.Equal(2_000, c.N));
    }

    [Fact(Timeout = 180_000)]
    public async Task The_devices_predict_counts_add_to_the_central_online_drift_of_the_model()
    {
        var (model, table, _) = await CentralAsync();
        var path = NewDeviceFile();
        var deviceId = DeviceId();
        await ModelSync.PullAsync(_device, path, new PullOptions { Models = [model + "@production"], Device = deviceId }, Ct);
        await ScoreAsync(path, model, table); // the table maps predict()'s slots to the baseline's columns
        await using (var connection = new SqliteConnection($"Data Source={path};Pooling=False"))
        {
            // In-process scoring on the device: predict() counts under 'online:<model>' into the pulled bins.
            await connection.OpenAsync(Ct);
            SqlitePredictFunctions.Register(connection);
            Assert.Equal(300, await connection.ExecuteScalarAsync<long>(
                $"SELECT count(predict('{model}@production', sepal_length, sepal_width, petal_length, petal_width)) FROM flowers WHERE id <= 300"));
            SqlitePredictFunctions.FlushDriftCounts(connection);
        }

        var first = await ModelSync.PushAsync(path, _device, cancellationToken: Ct);
        var second = await ModelSync.PushAsync(path, _device, cancellationToken: Ct);

        var online = Assert.Single(first.ProfileCounts, p => p.PredictionTable == "online:" + model);
        Assert.Equal((ProfileCountsPushed.Added, 4 * 300L), (online.Status, online.Counts));
        Assert.Equal(0, second.ProfileCountsAdded);
        var drift = (await CentralDriftAsync("online:" + model)).Where(d => d.Key.Item1 == 1).ToList();
        Assert.Equal(4, drift.Count);
        Assert.All(drift, d => Assert.Equal(300, d.Value.N));
        Assert.All((await CentralDriftAsync("online:" + model, "shop-elsewhere")).Values, d => Assert.Equal(0, d.N));
    }

    [Fact(Timeout = 180_000)]
    public async Task Counts_of_a_version_the_central_database_does_not_hold_refuse_the_push_whole()
    {
        var (model, table, _) = await CentralAsync();
        var path = NewDeviceFile();
        var deviceId = DeviceId();
        await ModelSync.PullAsync(_device, path, new PullOptions { Models = [model + "@production"], Device = deviceId }, Ct);
        await ScoreAsync(path, model, table);
        await using (var registry = await SqliteModelRegistry.OpenAsync(path, Ct))
        {
            // A model pushed on the device only; its predictions gone, its counts (a first window learned on the device) stay.
            await registry.PushAsync("local_only", TestModels.Bytes("skl2onnx_rf_iris.onnx"), [], Ct);
            var tables = new SqlitePredictionTables(registry);
            await tables.CreateAsync(new("z_local_scores", "flowers", ["id"], "local_only", FeatureMapping.Parse(Batch.BatchTables.IrisFeatures)), Ct);
            await tables.RefreshAsync("z_local_scores", cancellationToken: Ct);
            await registry.Connection.ExecuteAsync("DELETE FROM mad_out_z_local_scores");
        }

        var refused = await Assert.ThrowsAsync<ModelAsDataException>(() => ModelSync.PushAsync(path, _device, new PushOptions(), Ct));

        Assert.Contains("names versions this database does not hold (local_only version 1): nothing was added", refused.Message, StringComparison.Ordinal);
        Assert.Equal(0, await Database.DataSource.ScalarAsync<long>("SELECT count(*) FROM mad.edge_predictions WHERE device = @deviceId", new { deviceId }));
        Assert.Equal(0, await Database.DataSource.ScalarAsync<long>("SELECT count(*) FROM mad.edge_profile_counts WHERE device = @deviceId", new { deviceId }));
        Assert.All((await CentralDriftAsync(table)).Values, c => Assert.Equal(0, c.N));
        await using var device = await SqliteDatabase.OpenAsync(path, Ct);
        Assert.Equal(0, await device.ExecuteScalarAsync<long>("SELECT count(*) FROM mad_profile_count_pushes"));
    }

    private static async Task<(int Code, string Output)> Mad(params string[] args)
    {
        using var console = new Spectre.Console.Testing.TestConsole();
        console.Profile.Width = 400;
        using var output = new StringWriter();
        var code = await ModelAsData.Cli.MadCommand.Create(console).Parse(args).InvokeAsync(new System.CommandLine.InvocationConfiguration { Output = output, Error = output }, Ct);
        return (code, console.Output + output);
    }
}

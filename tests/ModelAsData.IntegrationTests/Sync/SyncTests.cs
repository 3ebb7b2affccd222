using System.Diagnostics;
using Dapper;
using Microsoft.Data.Sqlite;
using ModelAsData.Core.Deployments;
using ModelAsData.IntegrationTests.Deployments;
using ModelAsData.IntegrationTests.Hostile;
using ModelAsData.Postgres.Jobs;
using ModelAsData.Sqlite;
using ModelAsData.Sync;

namespace ModelAsData.IntegrationTests.Sync;

/// <summary>
/// Edge sync against a real PostgreSQL and real SQLite files: pull, offline scoring with the central deployment's
/// sticky hash, the second pull, a pull killed in its transaction, two pulls at once, bad bytes, a newer device file,
/// and push (twice; with an unknown version). A device logs in IN ROLE mad_user, mad_device.
/// </summary>
public sealed class SyncTests(PostgresDatabase database) : DatabaseTests(database), IAsyncLifetime
{
    private readonly List<string> _files = [];
    private HostileRoles _roles = null!;
    private string _puller = "";
    private string _device = "";
    private string _deviceRole = "";

    public async ValueTask InitializeAsync()
    {
        _roles = new HostileRoles(Database);
        var (puller, _) = await _roles.LoginAsync("puller", "IN ROLE mad_user");
        var (device, _) = await _roles.LoginAsync("device", "IN ROLE mad_user, mad_device");
        _puller = Database.ConnectionStringFor(puller, HostileRoles.Password);
        _device = Database.ConnectionStringFor(device, HostileRoles.Password);
        _deviceRole = device;
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
        var path = Path.Combine(Path.GetTempPath(), $"mad-device-{Guid.NewGuid():N}.db");
        _files.Add(path);
        return path;
    }

    private static string DeviceId() => "shop-" + Guid.NewGuid().ToString("N")[..8];

    /// <summary>Three ready versions centrally, production at 1 with a 30 % canary of 2; returns the model and the seed.</summary>
    private async Task<(string Model, long Seed)> CanaryModelAsync()
    {
        var model = await PostgresDeploymentTests.ThreeReadyVersionsAsync(new PostgresModelRegistry(Database.DataSource));
        await Database.DataSource.ExecuteAsync("SELECT mad.deploy(@model, 'production', 1)", new { model });
        var seed = await Database.DataSource.ScalarAsync<long>("SELECT mad.deploy_canary(@model, 'production', 2, percent => 30)", new { model });
        return (model, seed);
    }

    /// <summary>On the device, offline: a source table of 2,000 flowers and a prediction table on the model's production alias, refreshed.</summary>
    private static async Task ScoreOnDeviceAsync(string path, string model, string table = "scores")
    {
        await using var registry = await SqliteModelRegistry.OpenAsync(path, Ct);
        await registry.Connection.ExecuteAsync("""
            CREATE TABLE IF NOT EXISTS flowers (id INTEGER PRIMARY KEY, sepal_length REAL, sepal_width REAL, petal_length REAL, petal_width REAL);
            WITH RECURSIVE g(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM g WHERE i < 2000)
            INSERT OR IGNORE INTO flowers SELECT i, 4.3 + (i % 37) * 0.1, 2.0 + (i % 23) * 0.1, 1.0 + (i % 59) * 0.1, 0.1 + (i % 25) * 0.1 FROM g;
            """);
        var tables = new SqlitePredictionTables(registry);
        await tables.CreateAsync(new(table, "flowers", ["id"], model + "@production", FeatureMapping.Parse(Batch.BatchTables.IrisFeatures)), Ct);
        await tables.RefreshAsync(table, cancellationToken: Ct);
    }

    [Fact(Timeout = 120_000)]
    public async Task Pull_copies_versions_aliases_and_deployment_and_the_device_scores_offline_with_the_same_sticky_hash()
    {
        var (model, seed) = await CanaryModelAsync();
        var path = NewDeviceFile();
        var deviceId = DeviceId();

        var result = await ModelSync.PullAsync(_device, path, new PullOptions { Models = [model + "@production"], Device = deviceId }, Ct);

        Assert.Equal((2, 1, 1), (result.VersionsCopied, result.AliasesChanged, result.DeploymentsChanged));
        await using (var file = await SqliteDatabase.OpenAsync(path, Ct))
        {
            var central = await Database.DataSource.QueryAsync<(int Version, string Sha256)>("SELECT version, sha256 FROM mad.model_versions WHERE model = @model AND version <= 2 ORDER BY version", new { model });
            var held = await file.QueryAsync<(long Version, string Sha256, string Status)>("SELECT version, sha256, status FROM mad_model_versions WHERE model = @model ORDER BY version", new { model });
            Assert.Equal(central.Select(c => ((long)c.Version, c.Sha256, "ready")), held);
            Assert.Equal(1, await file.ExecuteScalarAsync<long>("SELECT version FROM mad_aliases WHERE model = @model AND alias = 'production'", new { model }));
            var deployment = await file.QuerySingleAsync<(long Seed, long Canary, double Percent)>("SELECT seed, canary_version, canary_percent FROM mad_deployments WHERE model = @model", new { model });
            Assert.Equal((seed, 2L, 30.0), deployment);
            Assert.Equal(deviceId, await file.ExecuteScalarAsync<string>("SELECT id FROM mad_device"));
        }

        var registered = (await Database.DataSource.QueryAsync<(DateTime? LastPull, string Versions)>("SELECT last_pull_at, versions::text FROM mad.devices WHERE id = @deviceId", new { deviceId })).Single();
        Assert.NotNull(registered.LastPull);
        Assert.Contains($"\"model\": \"{model}\", \"version\": 2", registered.Versions, StringComparison.Ordinal);

        // Offline: the device file alone scores; each key's arm is the one mad.bucket gives it centrally.
        await ScoreOnDeviceAsync(path, model);
        await using var device = await SqliteDatabase.OpenAsync(path, Ct);
        var rows = (await device.QueryAsync<(long Id, long Version, string Arm)>("SELECT id, model_version, arm FROM mad_out_scores ORDER BY id")).ToList();
        Assert.Equal(2_000, rows.Count);
        var centralCanary = (await Database.DataSource.QueryAsync<long>(
            "SELECT k FROM generate_series(1, 2000) k WHERE mad.bucket(@seed, mad.key_text(k::text)) < 0.30 ORDER BY k", new { seed })).ToList();
        Assert.Equal(centralCanary, rows.Where(r => r.Arm == Arms.Canary).Select(r => r.Id));
        Assert.All(rows, r => Assert.Equal(r.Arm == Arms.Canary ? 2 : 1, r.Version));
        Assert.InRange(centralCanary.Count, 500, 700);
    }

    [Fact(Timeout = 120_000)]
    public async Task A_second_pull_copies_only_what_changed_after_an_alias_move()
    {
        var (model, _) = await CanaryModelAsync();
        var path = NewDeviceFile();
        await ModelSync.PullAsync(_device, path, new PullOptions { Models = [model + "@production"] }, Ct);

        // Blue-green to version 3: the alias moves and the canary ends.
        await Database.DataSource.ExecuteAsync("SELECT mad.deploy(@model, 'production', 3)", new { model });
        var second = await ModelSync.PullAsync(_device, path, new PullOptions { Models = [model + "@production"] }, Ct);
        var third = await ModelSync.PullAsync(_device, path, new PullOptions { Models = [model + "@production"] }, Ct);

        Assert.Equal((1, 1, 1), (second.VersionsCopied, second.AliasesChanged, second.DeploymentsChanged));
        Assert.Equal((0, 0, 0), (third.VersionsCopied, third.AliasesChanged, third.DeploymentsChanged));
        await using var registry = await SqliteModelRegistry.OpenAsync(path, Ct);
        Assert.Equal(3, (await registry.ResolveAsync(ModelReference.Parse(model + "@production"), Ct)).Version);
        Assert.Equal(0, await registry.Connection.ExecuteScalarAsync<long>("SELECT count(canary_version) FROM mad_deployments WHERE model = @model", new { model }));
        Assert.Equal(2, await registry.Connection.ExecuteScalarAsync<long>("SELECT count(*) FROM mad_alias_history WHERE model = @model", new { model }));
    }

    [Fact(Timeout = 180_000)]
    public async Task A_pull_killed_in_its_transaction_leaves_the_file_as_it_was_and_a_second_pull_meanwhile_is_refused()
    {
        var (model, _) = await CanaryModelAsync();
        var path = NewDeviceFile();
        await ModelSync.PullAsync(_device, path, new PullOptions { Models = [model + "@production"] }, Ct);
        await Database.DataSource.ExecuteAsync("SELECT mad.deploy(@model, 'production', 3)", new { model });
        var before = await DeviceStateAsync(path);

        // The real CLI in a child process, held open inside its device transaction, then killed.
        var start = new ProcessStartInfo("dotnet") { RedirectStandardError = true, RedirectStandardOutput = true, UseShellExecute = false };
        foreach (var arg in new[] { Path.Combine(AppContext.BaseDirectory, "mad.dll"), "sync", "pull", "--from", _device, "--to", path, "--model", model + "@production" })
        {
            start.ArgumentList.Add(arg);
        }

        start.Environment["MAD_SYNC_TEST_HOLD_MS"] = "120000";
        using var child = Process.Start(start)!;
        var holding = await child.StandardError.ReadLineAsync(Ct);
        Assert.Equal("holding the pull open before commit", holding);

        var busy = await Assert.ThrowsAsync<ModelAsDataException>(() => ModelSync.PullAsync(_device, path, new PullOptions { Models = [model + "@production"] }, Ct));
        Assert.Contains("Another mad sync of", busy.Message, StringComparison.Ordinal);

        child.Kill(entireProcessTree: true);
        await child.WaitForExitAsync(Ct);
        Assert.Equal(before, await DeviceStateAsync(path));

        // The lock went with the process: the next pull completes.
        var after = await ModelSync.PullAsync(_device, path, new PullOptions { Models = [model + "@production"] }, Ct);
        Assert.Equal((1, 1, 1), (after.VersionsCopied, after.AliasesChanged, after.DeploymentsChanged));
    }

    [Fact(Timeout = 120_000)]
    public async Task A_pull_whose_central_connection_drops_mid_read_leaves_the_file_as_it_was()
    {
        var (model, _) = await CanaryModelAsync();
        var path = NewDeviceFile();
        await ModelSync.PullAsync(_device, path, new PullOptions { Models = [model + "@production"] }, Ct);
        await Database.DataSource.ExecuteAsync("SELECT mad.deploy(@model, 'production', 3)", new { model });
        var before = await DeviceStateAsync(path);

        // The pull has read the models and aliases in its snapshot and waits for the deployments; its connection is cut there.
        await using var locker = await Database.DataSource.OpenConnectionAsync(Ct);
        await using var hold = await locker.BeginTransactionAsync(Ct);
        await locker.ExecuteAsync("LOCK TABLE mad.deployments IN ACCESS EXCLUSIVE MODE", transaction: hold);
        var pull = ModelSync.PullAsync(_device, path, new PullOptions { Models = [model + "@production"] }, Ct);
        var cut = false;
        for (var i = 0; i < 300 && !cut; i++)
        {
            cut = await Database.DataSource.ScalarAsync<bool>(
                "SELECT coalesce(bool_or(pg_terminate_backend(pid)), false) FROM pg_stat_activity WHERE usename = @role AND application_name = 'mad sync pull' AND wait_event_type = 'Lock'",
                new { role = _deviceRole });
            await Task.Delay(100, Ct);
        }

        await hold.RollbackAsync(Ct);
        Assert.True(cut, "the pull never waited for the locked table");
        var dropped = await Assert.ThrowsAsync<ModelAsDataException>(() => pull);
        Assert.Contains("The connection to the central database was lost while the pull read it", dropped.Message, StringComparison.Ordinal);
        Assert.Contains("was not changed. Run the pull again.", dropped.Message, StringComparison.Ordinal);
        Assert.Equal(before, await DeviceStateAsync(path));

        // The next pull, on a new connection, completes.
        var after = await ModelSync.PullAsync(_device, path, new PullOptions { Models = [model + "@production"] }, Ct);
        Assert.Equal((1, 1, 1), (after.VersionsCopied, after.AliasesChanged, after.DeploymentsChanged));
    }

    private static async Task<string> DeviceStateAsync(string path)
    {
        await using var file = await SqliteDatabase.OpenAsync(path, Ct);
        var versions = await file.QueryAsync<string>("SELECT model || '@' || version || ':' || sha256 FROM mad_model_versions ORDER BY 1");
        var aliases = await file.QueryAsync<string>("SELECT model || '@' || alias || '->' || version FROM mad_aliases ORDER BY 1");
        var deployments = await file.QueryAsync<string>("SELECT model || ':' || coalesce(canary_version, 0) || ':' || seed FROM mad_deployments ORDER BY 1");
        var pulled = await file.ExecuteScalarAsync<string>("SELECT last_pull_at FROM mad_device");
        return string.Join(" | ", versions.Concat(aliases).Concat(deployments).Append(pulled ?? ""));
    }

    [Fact(Timeout = 120_000)]
    public async Task Bytes_that_do_not_match_their_sha256_and_a_device_file_of_a_newer_schema_are_refused_with_nothing_applied()
    {
        var (model, _) = await CanaryModelAsync();
        var path = NewDeviceFile();
        await ModelSync.PullAsync(_device, path, new PullOptions { Models = [model + "@1"] }, Ct);
        var before = await DeviceStateAsync(path);

        await Database.DataSource.ExecuteAsync("UPDATE mad.model_versions SET sha256 = repeat('ab', 32) WHERE model = @model AND version = 2", new { model });
        var bad = await Assert.ThrowsAsync<ModelAsDataException>(() => ModelSync.PullAsync(_device, path, new PullOptions { Models = [model + "@production"] }, Ct));
        Assert.Equal(ErrorCode.InvalidModel, bad.Code);
        Assert.Contains("version 2: its bytes hash to sha256", bad.Message, StringComparison.Ordinal);
        Assert.Equal(before, await DeviceStateAsync(path));

        await using (var file = await SqliteDatabase.OpenAsync(path, Ct))
        {
            await file.ExecuteAsync("INSERT INTO mad_schema_migrations (name, checksum, applied_at) VALUES ('999_from_the_future.sql', 'x', 'now')");
        }

        var newer = await Assert.ThrowsAsync<ModelAsDataException>(() => ModelSync.PullAsync(_device, path, new PullOptions { Models = [model + "@1"] }, Ct));
        Assert.Contains("has schema migrations this mad does not know (999_from_the_future.sql)", newer.Message, StringComparison.Ordinal);
        var missing = await Assert.ThrowsAsync<ModelAsDataException>(() => ModelSync.PullAsync(_device, NewDeviceFile(), new PullOptions { Models = [model + "@staging"] }, Ct));
        Assert.Contains("has no alias 'staging'", missing.Message, StringComparison.Ordinal);

        // A mad_user that is not a device reads the registry but not the bytes.
        var reader = await Assert.ThrowsAsync<ModelAsDataException>(() => ModelSync.PullAsync(_puller, NewDeviceFile(), new PullOptions { Models = [model + "@3"] }, Ct));
        Assert.Contains("permission denied for function device_version_bytes", reader.Message, StringComparison.Ordinal);
    }

    [Fact(Timeout = 120_000)]
    public async Task A_version_the_devices_onnx_runtime_cannot_load_is_refused_and_the_file_stays_as_it_was()
    {
        var (model, _) = await CanaryModelAsync();
        var path = NewDeviceFile();
        await ModelSync.PullAsync(_device, path, new PullOptions { Models = [model + "@1"] }, Ct);
        var before = await DeviceStateAsync(path);
        // Ready centrally (as a newer runtime on the server would have validated it), but not ONNX this runtime reads.
        var version = await Database.DataSource.ScalarAsync<int>("SELECT mad.push_model(@model, '\\x08071204'::bytea)", new { model });
        await Database.DataSource.ExecuteAsync("UPDATE mad.model_versions SET status = 'ready', signature = (SELECT signature FROM mad.model_versions WHERE model = @model AND version = 1) WHERE model = @model AND version = @version", new { model, version });

        var refused = await Assert.ThrowsAsync<ModelAsDataException>(() => ModelSync.PullAsync(_device, path, new PullOptions { Models = [model + "@1", $"{model}@{version}"] }, Ct));

        Assert.Equal(ErrorCode.InvalidModel, refused.Code);
        Assert.Contains($"version {version} is ready centrally, but this device's ONNX Runtime cannot load it", refused.Message, StringComparison.Ordinal);
        Assert.Equal(before, await DeviceStateAsync(path));
    }

    [Fact(Timeout = 120_000)]
    public async Task Push_twice_adds_the_rows_once_with_version_and_arm_through_the_cli()
    {
        var (model, _) = await CanaryModelAsync();
        var path = NewDeviceFile();
        var deviceId = DeviceId();
        await ModelSync.PullAsync(_device, path, new PullOptions { Models = [model + "@production"], Device = deviceId }, Ct);
        await ScoreOnDeviceAsync(path, model);

        var first = await Mad("sync", "push", "--from", path, "--to", _device);
        var second = await Mad("sync", "push", "--from", path, "--to", _device);

        Assert.True(first.Code == 0, first.Output);
        Assert.Contains($"Pushed device {deviceId}: 2000 row(s) read, 2000 new; 0 outcome(s) read, 0 new.", first.Output, StringComparison.Ordinal);
        Assert.Contains($"Pushed device {deviceId}: 2000 row(s) read, 0 new; 0 outcome(s) read, 0 new.", second.Output, StringComparison.Ordinal);
        await using var file = await SqliteDatabase.OpenAsync(path, Ct);
        var local = (await file.QueryAsync<(long Id, long Version, string Arm, double P1)>("SELECT id, model_version, arm, probability_1 FROM mad_out_scores ORDER BY id"))
            .Select(r => (r.Id.ToString(System.Globalization.CultureInfo.InvariantCulture), (int)r.Version, r.Arm, Math.Round(r.P1, 6))).ToList();
        var central = (await Database.DataSource.QueryAsync<(string Key, int Version, string Arm, double P1)>(
            "SELECT key, version, arm, (outputs->>'probability_1')::float8 FROM mad.edge_predictions WHERE device = @deviceId ORDER BY key::int", new { deviceId }))
            .Select(r => (r.Key, r.Version, r.Arm, Math.Round(r.P1, 6))).ToList();
        Assert.Equal(local, central);
        Assert.NotNull(await Database.DataSource.ScalarAsync<DateTime?>("SELECT last_push_at FROM mad.devices WHERE id = @deviceId", new { deviceId }));

        var help = await Mad("sync", "pull", "--help");
        Assert.Contains("--model", help.Output, StringComparison.Ordinal);
    }

    [Fact(Timeout = 120_000)]
    public async Task A_push_of_old_and_new_rows_adds_only_the_new_ones()
    {
        // The second push meets rows already pushed: finish_device_push's plain INSERT fails on the first one and the
        // push is redone with ON CONFLICT DO NOTHING (048), so the new table's rows still arrive, each once.
        var (model, _) = await CanaryModelAsync();
        var path = NewDeviceFile();
        var deviceId = DeviceId();
        await ModelSync.PullAsync(_device, path, new PullOptions { Models = [model + "@production"], Device = deviceId }, Ct);
        await ScoreOnDeviceAsync(path, model);
        var first = await ModelSync.PushAsync(path, _device, new PushOptions(), Ct);
        await ScoreOnDeviceAsync(path, model, "more_scores");

        var second = await ModelSync.PushAsync(path, _device, new PushOptions(), Ct);

        Assert.Equal((2000L, 2000L), (first.RowsRead, first.RowsAdded));
        Assert.Equal((4000L, 2000L), (second.RowsRead, second.RowsAdded));
        var perTable = (await Database.DataSource.QueryAsync<(string Table, long Rows, long Keys)>(
            "SELECT prediction_table, count(*), count(DISTINCT key) FROM mad.edge_predictions WHERE device = @deviceId GROUP BY 1 ORDER BY 1", new { deviceId })).ToList();
        Assert.Equal([("more_scores", 2000L, 2000L), ("scores", 2000L, 2000L)], perTable);
    }

    [Fact(Timeout = 120_000)]
    public async Task A_push_naming_a_version_the_central_database_does_not_hold_adds_nothing()
    {
        var (model, _) = await CanaryModelAsync();
        var path = NewDeviceFile();
        var deviceId = DeviceId();
        await ModelSync.PullAsync(_device, path, new PullOptions { Models = [model + "@production"], Device = deviceId }, Ct);
        await ScoreOnDeviceAsync(path, model);
        await using (var registry = await SqliteModelRegistry.OpenAsync(path, Ct))
        {
            // A model pushed on the device only, scored into a second table.
            await registry.PushAsync("local_only", TestModels.Bytes("skl2onnx_rf_iris.onnx"), [], Ct);
            var tables = new SqlitePredictionTables(registry);
            await tables.CreateAsync(new("z_local_scores", "flowers", ["id"], "local_only", FeatureMapping.Parse(Batch.BatchTables.IrisFeatures)), Ct);
            await tables.RefreshAsync("z_local_scores", cancellationToken: Ct);
        }

        var refused = await Assert.ThrowsAsync<ModelAsDataException>(() => ModelSync.PushAsync(path, _device, new PushOptions(), Ct));

        Assert.Contains("names versions this database does not hold (local_only version 1): nothing was added", refused.Message, StringComparison.Ordinal);
        Assert.Equal(0, await Database.DataSource.ScalarAsync<long>("SELECT count(*) FROM mad.edge_predictions WHERE device = @deviceId", new { deviceId }));
    }

    [Fact(Timeout = 120_000)]
    public async Task Outcomes_recorded_on_the_device_are_pushed_once_and_graded_centrally_per_device()
    {
        var (model, _) = await CanaryModelAsync();
        var name = Sql.UniqueName("fleet");
        // Centrally: the same prediction table, and its owner's binding of the fleet's labels (the device's keys, as served).
        var tables = new PostgresPredictionTables(new PostgresModelRegistry(Database.DataSource));
        var source = await Batch.BatchTables.CreateFlowersAsync(Database.DataSource, 10);
        await tables.CreateAsync(new PredictionTableSpec(name, source, ["id"], model + "@production", FeatureMapping.Parse(Batch.BatchTables.IrisFeatures)), Ct);
        await Database.DataSource.ExecuteAsync($"""
            CREATE TABLE public.{name}_events (id bigint, label text, observed_at timestamptz);
            CREATE VIEW public.{name}_labels AS
              SELECT id::text AS id, label, observed_at FROM public.{name}_events
              UNION ALL SELECT served_key, label, observed_at FROM mad.edge_outcomes WHERE prediction_table = '{name}';
            SELECT mad.set_outcomes('{name}', source => 'public.{name}_labels', key => ARRAY['id'], label => 'label', observed_at => 'observed_at');
            """);

        var path = NewDeviceFile();
        var deviceId = DeviceId();
        await ModelSync.PullAsync(_device, path, new PullOptions { Models = [model + "@production"], Device = deviceId }, Ct);
        await ScoreOnDeviceAsync(path, model, name);
        await using (var file = await SqliteDatabase.OpenAsync(path, Ct))
        {
            // The device learns 500 true classes after scoring: what its model said for the first 400, another class for 100.
            await file.ExecuteAsync($"""
                CREATE TABLE events (id INTEGER PRIMARY KEY, label INTEGER, observed_at TEXT);
                INSERT INTO events SELECT id, CASE WHEN id <= 400 THEN label ELSE (label + 1) % 3 END, '2030-01-01T00:00:00Z' FROM mad_out_{name} WHERE id <= 500;
                """);
        }

        var bound = await Mad("outcomes", "set", name, "--source", "events", "--key", "id", "--label", "label", "--observed-at", "observed_at", "--db", path);
        Assert.True(bound.Code == 0, bound.Output);
        var first = await ModelSync.PushAsync(path, _device, cancellationToken: Ct);
        var second = await ModelSync.PushAsync(path, _device, cancellationToken: Ct);

        Assert.Equal((2_000L, 2_000L, 500L, 500L), (first.RowsRead, first.RowsAdded, first.OutcomesRead, first.OutcomesAdded));
        Assert.Equal((500L, 0L), (second.OutcomesRead, second.OutcomesAdded));
        var accuracy = await Database.DataSource.QueryAsync<(long NLabeled, double Value)>(
            $"SELECT n_labeled, value FROM mad.performance('{name}') WHERE metric = 'accuracy'");
        Assert.Equal(500, accuracy.Sum(a => a.NLabeled));
        Assert.Equal(400.0 / 500, accuracy.Sum(a => a.NLabeled * a.Value) / 500, 9);
        // One device at a time: the reports narrow to it, and to nothing for another id.
        Assert.Equal(500, await Database.DataSource.ScalarAsync<long>(
            $"SET mad.device = '{deviceId}'; SELECT sum(n_labeled) FROM mad.performance('{name}') WHERE metric = 'accuracy'"));
        Assert.Equal(0, await Database.DataSource.ScalarAsync<long>(
            $"SET mad.device = 'shop-elsewhere'; SELECT count(*) FROM mad.performance('{name}')"));
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

using Dapper;
using Microsoft.Data.Sqlite;
using ModelAsData.Core.Deployments;
using ModelAsData.Sqlite;

namespace ModelAsData.IntegrationTests.Deployments;

/// <summary>Deployments in a real SQLite file: the same hash, the same rules, refresh by each key's bucket, and the CLI.</summary>
public sealed class SqliteDeploymentTests : IAsyncLifetime
{
    private readonly string _path = Path.Combine(Path.GetTempPath(), $"mad-deploy-{Guid.NewGuid():N}.db");
    private SqliteModelRegistry _registry = null!;

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    private static string Iris => Path.Combine(TestModels.Folder, "skl2onnx_rf_iris.onnx");

    private static string Rotated => Path.Combine(AppContext.BaseDirectory, "TestData", "rf_iris_rotated.onnx");

    public async ValueTask InitializeAsync()
    {
        _registry = await SqliteModelRegistry.OpenAsync(_path, Ct);
        SqlitePredictFunctions.Register(_registry.Connection);
        await _registry.PushAsync("churn", await File.ReadAllBytesAsync(Iris, Ct), [], Ct);
        await _registry.PushAsync("churn", await File.ReadAllBytesAsync(Rotated, Ct), [], Ct);
        await _registry.PushAsync("churn", await File.ReadAllBytesAsync(Iris, Ct), [], Ct);
        await _registry.Connection.ExecuteAsync("""
            CREATE TABLE flowers (id INTEGER PRIMARY KEY, sepal_length REAL, sepal_width REAL, petal_length REAL, petal_width REAL);
            WITH RECURSIVE g(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM g WHERE i < 3000)
            INSERT INTO flowers SELECT i, 4.3 + (i % 37) * 0.1, 2.0 + (i % 23) * 0.1, 1.0 + (i % 59) * 0.1, 0.1 + (i % 25) * 0.1 FROM g;
            """);
    }

    public async ValueTask DisposeAsync()
    {
        await _registry.DisposeAsync();
        SqliteConnection.ClearAllPools();
        foreach (var file in new[] { _path, _path + "-wal", _path + "-shm" })
        {
            File.Delete(file);
        }
    }

    [Fact(Timeout = 60_000)]
    public async Task Deploy_promote_and_abort_each_change_everything_or_nothing()
    {
        var deployments = new SqliteDeployments(_registry);
        await deployments.DeployAsync("churn", "production", 1, cancellationToken: Ct);
        await deployments.DeployCanaryAsync("churn", "production", 3, 20, cancellationToken: Ct);
        var before = await StateAsync();
        // The history refuses its next row: each change must leave the alias, the deployment and the history as they were.
        await _registry.Connection.ExecuteAsync("CREATE TEMP TRIGGER refuse_history BEFORE INSERT ON mad_deployment_history BEGIN SELECT RAISE(ABORT, 'the history is full'); END");

        foreach (var change in new Func<Task>[]
                 {
                     () => deployments.PromoteAsync("churn", "production", cancellationToken: Ct),
                     () => deployments.DeployAsync("churn", "production", 2, cancellationToken: Ct),
                     () => deployments.AbortAsync("churn", "production", cancellationToken: Ct),
                     () => deployments.DeployShadowAsync("churn", "production", 2, cancellationToken: Ct),
                 })
        {
            var refused = await Assert.ThrowsAsync<SqliteException>(change);
            Assert.Contains("the history is full", refused.Message, StringComparison.Ordinal);
            Assert.Equal(before, await StateAsync());
        }

        await _registry.Connection.ExecuteAsync("DROP TRIGGER refuse_history");
        Assert.Equal(3, (await deployments.PromoteAsync("churn", "production", cancellationToken: Ct)).Version);
        Assert.Equal(3, await _registry.Connection.ExecuteScalarAsync<long>("SELECT version FROM mad_aliases WHERE model = 'churn' AND alias = 'production'"));
    }

    /// <summary>The alias, its history, the deployment and its history, as text.</summary>
    private async Task<string> StateAsync() => (await _registry.Connection.ExecuteScalarAsync<string>("""
        SELECT (SELECT group_concat(model || '@' || alias || '=' || version, ',') FROM mad_aliases)
            || ' | ' || (SELECT count(*) FROM mad_alias_history)
            || ' | ' || (SELECT group_concat(coalesce(canary_version, '-') || ' ' || coalesce(canary_percent, '-') || ' ' || coalesce(shadow_version, '-') || ' ' || seed, ',') FROM mad_deployments)
            || ' | ' || (SELECT count(*) FROM mad_deployment_history)
        """))!;

    [Fact(Timeout = 60_000)]
    public async Task Bucket_on_a_sqlite_connection_gives_the_golden_values()
    {
        // printf '%s' '7:42' | sha256sum → 6fb44d7d = 1874087293 (StickyBucketTests has the rest).
        Assert.Equal(1874087293 / 4294967296.0, await _registry.Connection.ExecuteScalarAsync<double>("SELECT bucket(7, '42')"));
        Assert.Equal(383116829 / 4294967296.0, await _registry.Connection.ExecuteScalarAsync<double>("SELECT bucket(7, key_text(42, 'north'))"));
        Assert.Equal(2693480954 / 4294967296.0, await _registry.Connection.ExecuteScalarAsync<double>("SELECT bucket(7, 'Zoë')"));
        var inCanary = await _registry.Connection.ExecuteScalarAsync<long>("""
            WITH RECURSIVE g(k) AS (SELECT 1 UNION ALL SELECT k + 1 FROM g WHERE k < 100000)
            SELECT count(*) FROM g WHERE bucket(20261203, key_text(k)) < 0.10
            """);
        Assert.Equal(Enumerable.Range(1, 100_000).Count(k => StickyBucket.InCanary(20261203, StickyBucket.KeyText(k), 10)), inCanary);
        Assert.InRange(inCanary, 10_000 - 3 * 94.87, 10_000 + 3 * 94.87);
    }

    [Fact(Timeout = 60_000)]
    public async Task No_key_leaves_the_canary_while_its_percent_grows()
    {
        // As PostgresDeploymentTests checks mad.bucket: a key under p % is under every larger percent, so raising the
        // percent (a new canary at a higher percent under the same seed) only adds keys.
        var (keys, left) = await _registry.Connection.QuerySingleAsync<(long, long)>("""
            WITH RECURSIVE g(k) AS (SELECT 1 UNION ALL SELECT k + 1 FROM g WHERE k < 20000), p(v) AS (VALUES (1), (5), (25), (50), (99))
            SELECT count(*), count(*) FILTER (WHERE NOT bucket(5, key_text(k)) < (v * 1.5) / 100.0) FROM g, p WHERE bucket(5, key_text(k)) < v / 100.0
            """);
        Assert.InRange(keys, 30_000, 45_000); // about 20,000 × (1 + 5 + 25 + 50 + 99) %
        Assert.Equal(0, left);
    }

    [Fact(Timeout = 60_000)]
    public async Task Tables_refresh_scores_each_row_by_its_keys_bucket_and_records_version_and_arm()
    {
        var deployments = new SqliteDeployments(_registry);
        var tables = new SqlitePredictionTables(_registry);
        await deployments.DeployAsync("churn", "production", 1, cancellationToken: Ct);
        var canary = await deployments.DeployCanaryAsync("churn", "production", 2, 30, cancellationToken: Ct);
        var features = Core.FeatureMapping.Parse(Batch.BatchTables.IrisFeatures);
        await tables.CreateAsync(new("scores", "flowers", ["id"], "churn", features), Ct);
        await tables.CreateAsync(new("plain", "flowers", ["id"], "churn@1", features), Ct);

        var result = await tables.RefreshAsync("scores", cancellationToken: Ct);
        await tables.RefreshAsync("plain", cancellationToken: Ct);

        Assert.Equal(3_000, result.Rows);
        var rows = (await _registry.Connection.QueryAsync<(long Id, long Version, string Arm, double P0, double P1)>(
            "SELECT id, model_version, arm, probability_0, probability_1 FROM mad_out_scores ORDER BY id")).ToList();
        var plain = (await _registry.Connection.QueryAsync<(long Id, double P0, string Arm)>("SELECT id, probability_0, arm FROM mad_out_plain ORDER BY id")).ToList();
        Assert.Equal(3_000, rows.Count);
        for (var i = 0; i < rows.Count; i++)
        {
            var expected = canary.ArmOf(StickyBucket.KeyText(rows[i].Id));
            Assert.Equal((expected, expected == Arms.Canary ? 2L : 1L), (rows[i].Arm, rows[i].Version));
            Assert.Equal(plain[i].P0, expected == Arms.Canary ? rows[i].P1 : rows[i].P0, 6);
            Assert.Equal(Arms.Champion, plain[i].Arm);
        }

        var report = await deployments.ReportAsync("churn", "production", Ct);
        var canaryRows = rows.Count(r => r.Arm == Arms.Canary);
        Assert.Equal([(Arms.Champion, 1, 3_000L - canaryRows), (Arms.Canary, 2, (long)canaryRows)], report.Select(a => (a.Arm, a.Version, a.RowsScored)));
    }

    [Fact(Timeout = 120_000)]
    public async Task A_switch_while_a_refresh_starts_or_runs_never_mixes_versions_in_one_refresh()
    {
        // Another process (a second connection to the file) switches the deployment at two moments of a refresh,
        // chosen by a function the source view calls on every row it reads: while the refresh prepares (before its
        // write lock), and while it scores (under the lock).
        var deployments = new SqliteDeployments(_registry);
        var tables = new SqlitePredictionTables(_registry);
        await deployments.DeployAsync("churn", "production", 1, cancellationToken: Ct);
        await deployments.DeployCanaryAsync("churn", "production", 2, 50, cancellationToken: Ct);
        await _registry.Connection.ExecuteAsync("CREATE VIEW watched_flowers AS SELECT * FROM flowers WHERE switch_here() = 1");
        await using var other = await SqliteModelRegistry.OpenAsync(_path, Ct);
        var otherDeployments = new SqliteDeployments(other);
        Task? duringScoring = null;
        var promoted = false;
        _registry.Connection.CreateFunction("switch_here", () =>
        {
            var underLock = SQLitePCL.raw.sqlite3_get_autocommit(_registry.Connection.Handle) == 0;
            if (!underLock && !promoted)
            {
                promoted = true; // before the lock: the other process's promote commits at once (WAL: readers never block it)
                otherDeployments.PromoteAsync("churn", "production", cancellationToken: Ct).GetAwaiter().GetResult();
            }
            else if (underLock && duringScoring is null)
            {
                // Under the lock: the other process's deploy waits for the refresh to commit (busy_timeout).
                duringScoring = Task.Run(() => otherDeployments.DeployAsync("churn", "production", 3, cancellationToken: Ct));
            }

            return 1;
        });
        await tables.CreateAsync(new("scores", "watched_flowers", ["id"], "churn", Core.FeatureMapping.Parse(Batch.BatchTables.IrisFeatures)), Ct);

        var first = await tables.RefreshAsync("scores", cancellationToken: Ct);

        // The promote before the lock was seen (the refresh started again): every row by version 2, none by the old
        // champion without its canary, a state that never was.
        Assert.True(promoted);
        Assert.Equal((3_000L, 2), (first.Rows, first.Version.Version));
        Assert.Equal([(2L, Arms.Champion, 3_000L)], await _registry.Connection.QueryAsync<(long, string, long)>(
            "SELECT model_version, arm, count(*) FROM mad_out_scores GROUP BY 1, 2"));
        // The deploy during the scoring committed after it, and applies to the next refresh, whole.
        Assert.NotNull(duringScoring);
        await duringScoring;
        Assert.Equal(3, (await deployments.GetAsync("churn", "production", Ct)).Version);
        await tables.RefreshAsync("scores", cancellationToken: Ct);
        Assert.Equal([(3L, Arms.Champion, 3_000L)], await _registry.Connection.QueryAsync<(long, string, long)>(
            "SELECT model_version, arm, count(*) FROM mad_out_scores GROUP BY 1, 2"));
    }

    [Fact(Timeout = 60_000)]
    public async Task Deployment_at_answers_what_was_deployed_at_any_past_moment_and_mad_deploy_history_shows_it()
    {
        var deployments = new SqliteDeployments(_registry);
        var before = DateTimeOffset.UtcNow;
        await Task.Delay(20, Ct);
        await deployments.DeployAsync("churn", "production", 1, cancellationToken: Ct);
        await Task.Delay(20, Ct);
        var champion = DateTimeOffset.UtcNow;
        await Task.Delay(20, Ct);
        var canary = await deployments.DeployCanaryAsync("churn", "production", 2, 10, reason: "try v2", cancellationToken: Ct);
        await deployments.DeployShadowAsync("churn", "production", 3, 50, cancellationToken: Ct);
        await Task.Delay(20, Ct);
        var running = DateTimeOffset.UtcNow;
        await Task.Delay(20, Ct);
        await deployments.PromoteAsync("churn", "production", cancellationToken: Ct);
        await Task.Delay(20, Ct);

        Assert.Null(await deployments.DeploymentAtAsync("churn", "production", before, Ct));
        Assert.Equal(new Deployment("churn", "production", 1, null, null, null, null, null, null, null, null), await deployments.DeploymentAtAsync("churn", "production", champion, Ct));
        Assert.Equal(new Deployment("churn", "production", 1, 2, 10, null, null, null, 3, 50, canary.Seed),
            await deployments.DeploymentAtAsync("churn", "production", running, Ct));
        Assert.Equal(new Deployment("churn", "production", 2, null, null, null, null, null, 3, 50, canary.Seed),
            await deployments.DeploymentAtAsync("churn", "production", DateTimeOffset.UtcNow, Ct));
        Assert.Contains("has no alias 'staging'", (await Assert.ThrowsAsync<ModelAsData.Core.ModelAsDataException>(
            () => deployments.DeploymentAtAsync("churn", "staging", running, Ct))).Message, StringComparison.Ordinal);

        await _registry.DisposeAsync(); // the CLI opens the file itself
        async Task<(int Code, string Output)> Mad(params string[] args)
        {
            using var console = new Spectre.Console.Testing.TestConsole();
            console.Profile.Width = 240;
            using var output = new StringWriter();
            var code = await ModelAsData.Cli.MadCommand.Create(console).Parse([.. args, "--db", _path]).InvokeAsync(new System.CommandLine.InvocationConfiguration { Output = output, Error = output }, Ct);
            return (code, console.Output + output);
        }

        var history = await Mad("deploy", "history", "churn", "production");
        Assert.Equal(0, history.Code);
        Assert.Matches(@"promote\W+2\W+-\W+3 on 50 %", history.Output);
        Assert.Matches(@"canary\W+1\W+2 at 10 %.*try v2", history.Output);
        var at = await Mad("deploy", "history", "churn", "production", "--at", running.ToString("O", System.Globalization.CultureInfo.InvariantCulture));
        Assert.Contains($"churn@production: version 1, canary version 2 at 10 % of keys (seed {canary.Seed}), shadow version 3 on 50 % of keys", at.Output, StringComparison.Ordinal);
        Assert.Contains("did not exist yet", (await Mad("deploy", "history", "churn", "production", "--at", before.ToString("O", System.Globalization.CultureInfo.InvariantCulture))).Output, StringComparison.Ordinal);
        var bad = await Mad("deploy", "history", "churn", "production", "--at", "yesterday");
        Assert.NotEqual(0, bad.Code);
        Assert.Contains("--at takes a moment such as 2026-11-01T09:00:00Z", bad.Output, StringComparison.Ordinal);
        Assert.Contains("--at goes with history", (await Mad("deploy", "status", "churn", "production", "--at", "2026-11-01")).Output, StringComparison.Ordinal);
    }

    [Fact(Timeout = 60_000)]
    public async Task Bad_input_gets_an_error_that_names_what_exists()
    {
        var deployments = new SqliteDeployments(_registry);
        await deployments.DeployAsync("churn", "production", 1, cancellationToken: Ct);

        async Task<string> Fails(Func<Task> call) => (await Assert.ThrowsAsync<ModelAsDataException>(call)).Message;

        Assert.Contains("outside (0, 100]", await Fails(() => deployments.DeployCanaryAsync("churn", "production", 2, 0, cancellationToken: Ct)), StringComparison.Ordinal);
        Assert.Contains("outside (0, 100]", await Fails(() => deployments.DeployCanaryAsync("churn", "production", 2, 101, cancellationToken: Ct)), StringComparison.Ordinal);
        Assert.Contains("only PostgreSQL has", await Fails(() => deployments.DeployCanaryAsync("churn", "production", 2, 5, [5, 25], TimeSpan.FromHours(1), cancellationToken: Ct)), StringComparison.Ordinal);
        Assert.Contains("its aliases are production -> 1", await Fails(() => deployments.DeployCanaryAsync("churn", "staging", 2, 10, cancellationToken: Ct)), StringComparison.Ordinal);
        Assert.Contains("runs no canary to promote: it serves version 1", await Fails(() => deployments.PromoteAsync("churn", "production", cancellationToken: Ct)), StringComparison.Ordinal);
        Assert.Contains("runs no canary or shadow to abort", await Fails(() => deployments.AbortAsync("churn", "production", cancellationToken: Ct)), StringComparison.Ordinal);
        Assert.Contains("already serves version 1 to every key", await Fails(() => deployments.DeployCanaryAsync("churn", "production", 1, 10, cancellationToken: Ct)), StringComparison.Ordinal);
        await deployments.DeployCanaryAsync("churn", "production", 2, 10, cancellationToken: Ct);
        Assert.Contains("already runs a canary: version 2 at 10 % beside version 1", await Fails(() => deployments.DeployCanaryAsync("churn", "production", 3, 10, cancellationToken: Ct)), StringComparison.Ordinal);

        // A version that failed validation, and one not validated yet, as PostgreSQL's registry holds them.
        await _registry.Connection.ExecuteAsync("""
            UPDATE mad_model_versions SET status = 'rejected', reason = 'test', signature = NULL WHERE model = 'churn' AND version = 3;
            INSERT INTO mad_model_versions (model, version, onnx, sha256, size_bytes, metadata, status, created_by, created_at)
            SELECT model, 4, onnx, sha256, size_bytes, metadata, 'pending', created_by, created_at FROM mad_model_versions WHERE model = 'churn' AND version = 1;
            """);
        Assert.Contains("has no version 9; its versions are 1 (ready), 2 (ready), 3 (rejected), 4 (pending)",
            await Fails(() => deployments.DeployAsync("churn", "production", 9, cancellationToken: Ct)), StringComparison.Ordinal);
        Assert.Contains("Cannot deploy churn@4 as a shadow: it is pending, and only a ready version is served; its versions are 1 (ready)",
            await Fails(() => deployments.DeployShadowAsync("churn", "production", 4, cancellationToken: Ct)), StringComparison.Ordinal);
        Assert.Contains("Cannot deploy churn@3 as the version served: it was rejected (test); its versions are",
            await Fails(() => deployments.DeployAsync("churn", "production", 3, cancellationToken: Ct)), StringComparison.Ordinal);

        // Nothing of the refused calls was kept: version 1 with its canary, and one history row per change made.
        var now = await deployments.GetAsync("churn", "production", Ct);
        Assert.Equal((1, (int?)2, (double?)10, (int?)null), (now.Version, now.CanaryVersion, now.CanaryPercent, now.ShadowVersion));
        Assert.Equal(["canary", "deploy"], (await deployments.HistoryAsync("churn", "production", Ct)).Select(c => c.Kind));
    }

    [Fact(Timeout = 60_000)]
    public async Task Mad_deploy_canary_status_promote_and_abort_on_a_sqlite_file()
    {
        await _registry.DisposeAsync(); // the CLI opens the file itself
        async Task<(int Code, string Output)> Mad(params string[] args)
        {
            using var console = new Spectre.Console.Testing.TestConsole();
            console.Profile.Width = 240;
            using var output = new StringWriter();
            var code = await ModelAsData.Cli.MadCommand.Create(console).Parse([.. args, "--db", _path]).InvokeAsync(new System.CommandLine.InvocationConfiguration { Output = output, Error = output }, Ct);
            return (code, console.Output + output);
        }

        Assert.Contains("churn@production: version 1", (await Mad("deploy", "churn", "production", "--version", "1")).Output, StringComparison.Ordinal);
        var canary = await Mad("deploy", "churn", "production", "--canary", "2", "--percent", "10");
        Assert.Equal(0, canary.Code);
        Assert.Contains("canary version 2 at 10 % of keys", canary.Output, StringComparison.Ordinal);
        var status = await Mad("deploy", "status", "churn", "production");
        Assert.Contains("champion", status.Output, StringComparison.Ordinal);
        Assert.Contains("90 %", status.Output, StringComparison.Ordinal);
        Assert.Contains("churn@production: version 2", (await Mad("deploy", "promote", "churn", "production")).Output, StringComparison.Ordinal);
        Assert.Contains("churn@production: version 2, shadow version 3 on 100 % of keys", (await Mad("deploy", "churn", "production", "--shadow", "3")).Output, StringComparison.Ordinal);
        Assert.Contains("churn@production: version 2", (await Mad("deploy", "abort", "churn", "production")).Output, StringComparison.Ordinal);
        var none = await Mad("deploy", "churn", "production");
        Assert.NotEqual(0, none.Code);
        Assert.Contains("Give one of --version N", none.Output, StringComparison.Ordinal);
        var help = await Mad("deploy", "--help");
        Assert.Contains("--canary", help.Output, StringComparison.Ordinal);
    }

    [Fact(Timeout = 60_000)]
    public async Task Predict_keyed_uses_the_version_the_deployment_serves_the_key_and_agrees_with_the_refresh()
    {
        var deployments = new SqliteDeployments(_registry);
        var tables = new SqlitePredictionTables(_registry);
        await deployments.DeployAsync("churn", "production", 1, cancellationToken: Ct);
        await deployments.DeployCanaryAsync("churn", "production", 2, 40, cancellationToken: Ct);
        await tables.CreateAsync(new("scores", "flowers", ["id"], "churn", Core.FeatureMapping.Parse(Batch.BatchTables.IrisFeatures)), Ct);
        await tables.RefreshAsync("scores", cancellationToken: Ct);

        var disagreeing = await _registry.Connection.ExecuteScalarAsync<long>("""
            SELECT count(*) FROM flowers f JOIN mad_out_scores o USING (id)
            WHERE predict_keyed('churn', f.id, f.sepal_length, f.sepal_width, f.petal_length, f.petal_width) <> o.label
            """);
        Assert.Equal(0, disagreeing);
        // Without the key, predict() is the champion's; the keyed form differs on some canary rows.
        var differ = await _registry.Connection.ExecuteScalarAsync<long>("""
            SELECT count(*) FROM flowers f
            WHERE predict_keyed('churn', f.id, f.sepal_length, f.sepal_width, f.petal_length, f.petal_width)
               <> predict('churn', f.sepal_length, f.sepal_width, f.petal_length, f.petal_width)
            """);
        Assert.True(differ > 0);
    }
}

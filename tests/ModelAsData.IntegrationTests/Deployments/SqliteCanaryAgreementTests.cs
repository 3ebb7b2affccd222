using Dapper;
using Microsoft.Data.Sqlite;
using ModelAsData.Core.Deployments;
using ModelAsData.Sqlite;

namespace ModelAsData.IntegrationTests.Deployments;

/// <summary>
/// Agreement between champion and canary on SQLite (019_m): `mad tables refresh` under a canary also scores a sample of
/// the canary's keys with the champion and keeps only sums on the table's row; the report divides them.
/// </summary>
public sealed class SqliteCanaryAgreementTests : IAsyncLifetime
{
    private readonly string _path = Path.Combine(Path.GetTempPath(), $"mad-canary-agreement-{Guid.NewGuid():N}.db");
    private SqliteModelRegistry _registry = null!;

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    private static string Iris => Path.Combine(TestModels.Folder, "skl2onnx_rf_iris.onnx");

    private static string Rotated => Path.Combine(AppContext.BaseDirectory, "TestData", "rf_iris_rotated.onnx");

    public async ValueTask InitializeAsync()
    {
        _registry = await SqliteModelRegistry.OpenAsync(_path, Ct);
        SqlitePredictFunctions.Register(_registry.Connection);
        await PushAndFillAsync(_registry);
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

    /// <summary>
    /// For <see cref="CanaryAgreementTests"/>: the SQLite half of the two-store test. Champion 1, the rotated forest as a
    /// 50 % canary under <paramref name="seed"/>, 3,000 flowers as PostgreSQL's BatchTables makes them, refreshed once;
    /// returns the keys SQLite's bucket() puts in the agreement sample.
    /// </summary>
    internal static async Task<List<long>> PrepareAsync(SqliteModelRegistry registry, long seed)
    {
        await PushAndFillAsync(registry);
        var deployments = new SqliteDeployments(registry);
        await deployments.DeployAsync("churn", "production", 1, cancellationToken: Ct);
        await deployments.DeployCanaryAsync("churn", "production", 2, 50, cancellationToken: Ct);
        await registry.Connection.ExecuteAsync("UPDATE mad_deployments SET seed = @seed WHERE model = 'churn'", new { seed });
        var tables = new SqlitePredictionTables(registry);
        await tables.CreateAsync(new("scores", "flowers", ["id"], "churn", Core.FeatureMapping.Parse(Batch.BatchTables.IrisFeatures)), Ct);
        await tables.RefreshAsync("scores", cancellationToken: Ct);
        return await SampleAsync(registry.Connection, seed, 10);
    }

    [Fact(Timeout = 60_000)]
    public async Task A_canary_with_the_champions_bytes_agrees_fully_over_exactly_the_sampled_canary_keys()
    {
        var deployments = new SqliteDeployments(_registry);
        var tables = new SqlitePredictionTables(_registry);
        await deployments.DeployAsync("churn", "production", 1, cancellationToken: Ct);
        var deployment = await deployments.DeployCanaryAsync("churn", "production", 3, 50, cancellationToken: Ct); // version 1's bytes
        await CreateAsync(tables);

        var result = await tables.RefreshAsync("scores", cancellationToken: Ct);

        Assert.Equal(3_000, result.Rows); // the champion's scoring of canary keys is never counted nor written
        Assert.Equal(3_000, await _registry.Connection.ExecuteScalarAsync<long>("SELECT count(*) FROM mad_out_scores"));
        var sampled = (await SampleAsync(_registry.Connection, deployment.Seed!.Value, 10))
            .Count(k => deployment.ArmOf(StickyBucket.KeyText(k)) == Arms.Canary);
        Assert.InRange(sampled, 100, 200);
        var canary = (await deployments.ReportAsync("churn", "production", Ct)).Single(a => a.Arm == Arms.Canary);
        Assert.Equal((1.0, 0.0, (long?)sampled), (canary.ShareEqual, canary.MeanAbsoluteDifference, canary.RowsCompared));
        Assert.Equal(((long?)sampled, (long?)sampled, """{"probability_0":0,"probability_1":0,"probability_2":0}"""),
            (await _registry.Connection.QueryAsync<(long?, long?, string?)>(
                "SELECT canary_agreement_rows, canary_agreement_equal, canary_agreement_differences FROM mad_prediction_tables WHERE name = 'scores'")).Single());

        // What `mad deploy status` prints for it: the canary's row with 100 %, 0 and the rows compared, and what they mean.
        await _registry.DisposeAsync(); // the CLI opens the file itself
        using var console = new Spectre.Console.Testing.TestConsole();
        console.Profile.Width = 240;
        using var output = new StringWriter();
        var code = await ModelAsData.Cli.MadCommand.Create(console).Parse(["deploy", "status", "churn", "production", "--db", _path])
            .InvokeAsync(new System.CommandLine.InvocationConfiguration { Output = output, Error = output }, Ct);
        var status = console.Output + output;
        Assert.Equal(0, code);
        Assert.Contains("rows compared", status, StringComparison.Ordinal);
        Assert.Matches($@"canary\s*│\s*3\s*│\s*50 %.*│\s*100 %\s*│\s*0\s*│\s*{sampled}\s*│", status);
        Assert.Contains("The canary is compared with the champion on a sample of its keys", status, StringComparison.Ordinal);
    }

    [Fact(Timeout = 60_000)]
    public async Task A_canary_that_differs_shows_the_share_its_sampled_keys_agree_and_the_report_adds_up_the_deployments_refreshes()
    {
        var deployments = new SqliteDeployments(_registry);
        var tables = new SqlitePredictionTables(_registry);
        await deployments.DeployAsync("churn", "production", 1, cancellationToken: Ct);
        await CreateAsync(tables);
        await tables.RefreshAsync("scores", cancellationToken: Ct);
        await _registry.Connection.ExecuteAsync("CREATE TABLE champion AS SELECT * FROM mad_out_scores");
        var deployment = await deployments.DeployCanaryAsync("churn", "production", 2, 50, cancellationToken: Ct); // the rotated forest
        await _registry.Connection.ExecuteAsync("UPDATE mad_settings SET value = '30' WHERE name = 'canary_agreement_percent'");

        await tables.RefreshAsync("scores", cancellationToken: Ct);

        var sample = (await SampleAsync(_registry.Connection, deployment.Seed!.Value, 30)).ToHashSet();
        var rows = (await _registry.Connection.QueryAsync<(long Id, string Arm, long Label, double P0, double P1, double P2, long CLabel, double C0, double C1, double C2)>("""
            SELECT o.id, o.arm, o.label, o.probability_0, o.probability_1, o.probability_2, c.label, c.probability_0, c.probability_1, c.probability_2
            FROM mad_out_scores o JOIN champion c USING (id)
            """)).Where(r => r.Arm == Arms.Canary && sample.Contains(r.Id)).ToList();
        Assert.InRange(rows.Count, 350, 550);
        var equal = rows.Average(r => r.Label == r.CLabel ? 1.0 : 0.0);
        var difference = rows.Average(r => (Math.Abs(r.P0 - r.C0) + Math.Abs(r.P1 - r.C1) + Math.Abs(r.P2 - r.C2)) / 3);
        // The rotated forest shifts the forest's classes, so its labels seldom agree; its probabilities differ.
        Assert.InRange(equal, 0.0, 0.5);
        Assert.True(difference > 0.1, $"mean absolute difference {difference}");
        var canary = (await deployments.ReportAsync("churn", "production", Ct)).Single(a => a.Arm == Arms.Canary);
        Assert.Equal(rows.Count, canary.RowsCompared);
        Assert.Equal(equal, canary.ShareEqual!.Value, 9);
        Assert.Equal(difference, canary.MeanAbsoluteDifference!.Value, 9);

        // A second refresh under the same deployment adds its sums; the share over the same keys stays.
        await tables.RefreshAsync("scores", cancellationToken: Ct);
        canary = (await deployments.ReportAsync("churn", "production", Ct)).Single(a => a.Arm == Arms.Canary);
        Assert.Equal(2 * rows.Count, canary.RowsCompared);
        Assert.Equal(equal, canary.ShareEqual!.Value, 9);

        // A new deployment starts again; a refresh without a canary clears the sums.
        await deployments.AbortAsync("churn", "production", cancellationToken: Ct);
        await deployments.DeployCanaryAsync("churn", "production", 3, 50, cancellationToken: Ct);
        Assert.Null((await deployments.ReportAsync("churn", "production", Ct)).Single(a => a.Arm == Arms.Canary).RowsCompared);
        await deployments.AbortAsync("churn", "production", cancellationToken: Ct);
        await tables.RefreshAsync("scores", cancellationToken: Ct);
        Assert.Null(await _registry.Connection.ExecuteScalarAsync<long?>("SELECT canary_agreement_rows FROM mad_prediction_tables WHERE name = 'scores'"));
    }

    [Fact(Timeout = 60_000)]
    public async Task A_bad_sample_setting_stops_the_refresh_with_what_to_type_and_keeps_the_old_rows()
    {
        var deployments = new SqliteDeployments(_registry);
        var tables = new SqlitePredictionTables(_registry);
        await deployments.DeployAsync("churn", "production", 1, cancellationToken: Ct);
        await CreateAsync(tables);
        await tables.RefreshAsync("scores", cancellationToken: Ct);
        await deployments.DeployCanaryAsync("churn", "production", 2, 50, cancellationToken: Ct);
        await _registry.Connection.ExecuteAsync("UPDATE mad_settings SET value = '150' WHERE name = 'canary_agreement_percent'");

        var refused = await Assert.ThrowsAsync<Core.ModelAsDataException>(() => tables.RefreshAsync("scores", cancellationToken: Ct));

        Assert.Equal(Core.ErrorCode.InvalidArgument, refused.Code);
        Assert.Contains("The setting canary_agreement_percent is '150', not a percent in [0, 100], so nothing was refreshed", refused.Message, StringComparison.Ordinal);
        Assert.Contains("UPDATE mad_settings SET value = '10' WHERE name = 'canary_agreement_percent';", refused.Message, StringComparison.Ordinal);
        Assert.Equal([(1L, "champion", 3_000L)], await _registry.Connection.QueryAsync<(long, string, long)>(
            "SELECT model_version, arm, count(*) FROM mad_out_scores GROUP BY 1, 2"));

        // 0 turns the comparison off.
        await _registry.Connection.ExecuteAsync("UPDATE mad_settings SET value = '0' WHERE name = 'canary_agreement_percent'");
        await tables.RefreshAsync("scores", cancellationToken: Ct);
        var canary = (await deployments.ReportAsync("churn", "production", Ct)).Single(a => a.Arm == Arms.Canary);
        Assert.Equal(((double?)null, (double?)null, (long?)null), (canary.ShareEqual, canary.MeanAbsoluteDifference, canary.RowsCompared));
    }

    private static Task CreateAsync(SqlitePredictionTables tables) =>
        tables.CreateAsync(new("scores", "flowers", ["id"], "churn", Core.FeatureMapping.Parse(Batch.BatchTables.IrisFeatures)), Ct);

    /// <summary>The flowers whose key SQLite's bucket() puts in the agreement sample, as docs/DEPLOYMENTS.md writes it (XOR spelled with | and &amp;).</summary>
    private static async Task<List<long>> SampleAsync(SqliteConnection connection, long seed, double percent) =>
        (await connection.QueryAsync<long>("""
            SELECT id FROM flowers WHERE bucket((@seed | 6364136223846793005) - (@seed & 6364136223846793005), key_text(id)) < @percent / 100.0 ORDER BY id
            """, new { seed, percent })).ToList();

    /// <summary>Versions 1 and 3: the forest; 2: the rotated forest. 3,000 flowers, the rows PostgreSQL's BatchTables.CreateFlowersAsync makes.</summary>
    private static async Task PushAndFillAsync(SqliteModelRegistry registry)
    {
        await registry.PushAsync("churn", await File.ReadAllBytesAsync(Iris, Ct), [], Ct);
        await registry.PushAsync("churn", await File.ReadAllBytesAsync(Rotated, Ct), [], Ct);
        await registry.PushAsync("churn", await File.ReadAllBytesAsync(Iris, Ct), [], Ct);
        await registry.Connection.ExecuteAsync("""
            CREATE TABLE flowers (id INTEGER PRIMARY KEY, sepal_length REAL, sepal_width REAL, petal_length REAL, petal_width REAL);
            WITH RECURSIVE g(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM g WHERE i < 3000)
            INSERT INTO flowers SELECT i, 4.3 + (i % 37) * 0.1, 2.0 + (i % 23) * 0.1, 1.0 + (i % 59) * 0.1, 0.1 + (i % 25) * 0.1 FROM g;
            """);
    }
}

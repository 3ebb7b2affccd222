using Dapper;
using Microsoft.Data.Sqlite;
using ModelAsData.Core;
using ModelAsData.Core.Deployments;
using ModelAsData.Sqlite;

namespace ModelAsData.IntegrationTests.Deployments;

/// <summary>
/// Legacy replacement on SQLite (019), as PostgreSQL's 025_3 (<see cref="LegacyComparisonTests"/>): a source column
/// holding a legacy system's prediction is named, and the report shows each arm's agreement with it. A real file,
/// real ONNX models, and `mad` through its real parser.
/// </summary>
public sealed class SqliteLegacyComparisonTests : IAsyncLifetime
{
    private readonly string _path = Path.Combine(Path.GetTempPath(), $"mad-legacy-{Guid.NewGuid():N}.db");
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
            CREATE TABLE flowers (id INTEGER PRIMARY KEY, sepal_length REAL, sepal_width REAL, petal_length REAL, petal_width REAL,
                                  legacy_class INTEGER, legacy_score REAL, legacy_note TEXT);
            WITH RECURSIVE g(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM g WHERE i < 2000)
            INSERT INTO flowers (id, sepal_length, sepal_width, petal_length, petal_width)
            SELECT i, 4.3 + (i % 37) * 0.1, 2.0 + (i % 23) * 0.1, 1.0 + (i % 59) * 0.1, 0.1 + (i % 25) * 0.1 FROM g;
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

    [Fact(Timeout = 120_000)]
    public async Task The_report_shows_each_arms_agreement_with_the_legacy_column_labels_as_share_equal_values_as_mean_absolute_difference()
    {
        var deployments = new SqliteDeployments(_registry);
        var tables = new SqlitePredictionTables(_registry);
        await deployments.DeployAsync("churn", "production", 1, cancellationToken: Ct);
        await deployments.DeployCanaryAsync("churn", "production", 3, 50, cancellationToken: Ct);
        await deployments.DeployShadowAsync("churn", "production", 2, cancellationToken: Ct);
        await tables.CreateAsync(new("labels", "flowers", ["id"], "churn", FeatureMapping.Parse(Batch.BatchTables.IrisFeatures)), Ct);
        await tables.CreateAsync(new("scores", "flowers", ["id"], "churn@production", FeatureMapping.Parse(Batch.BatchTables.IrisFeatures)), Ct);
        await tables.RefreshAsync("labels", cancellationToken: Ct);
        // The legacy system: the served label on three keys in four, another label on the fourth (NULL on some: not
        // compared); a score 0.25 above the served class 0 probability.
        await _registry.Connection.ExecuteAsync("""
            UPDATE flowers SET legacy_class = (SELECT CASE WHEN flowers.id % 4 = 0 THEN (o.label + 1) % 3 ELSE o.label END FROM mad_out_labels o WHERE o.id = flowers.id),
                               legacy_score = (SELECT o.probability_0 + 0.25 FROM mad_out_labels o WHERE o.id = flowers.id)
            WHERE id % 10 <> 7
            """);
        await tables.RefreshAsync("scores", cancellationToken: Ct);

        Assert.Equal(new LegacyColumn("labels", "legacy_class", "label"), await deployments.SetLegacyColumnAsync("labels", "legacy_class", cancellationToken: Ct));
        Assert.Equal(new LegacyColumn("scores", "legacy_score", "probability_0"),
            await deployments.SetLegacyColumnAsync("scores", "legacy_score", "probability_0", Ct));
        // A real column defaults to the first value output, as on PostgreSQL.
        Assert.Equal("probability_0", (await deployments.SetLegacyColumnAsync("scores", "LEGACY_SCORE", cancellationToken: Ct)).Output);

        // The served arms, by a plain JOIN; the shadow's rows (the rotated forest) are compared too.
        var expected = (await _registry.Connection.QueryAsync<(string Arm, long Version, long Rows, double Equal)>("""
            SELECT o.arm, o.model_version, count(*), avg(CASE WHEN o.label = f.legacy_class THEN 1.0 ELSE 0.0 END)
            FROM flowers f JOIN mad_out_labels o USING (id) WHERE f.legacy_class IS NOT NULL AND o.error IS NULL GROUP BY 1, 2 ORDER BY 1 DESC
            """)).ToList();
        var shadowExpected = await _registry.Connection.ExecuteScalarAsync<double>("""
            SELECT avg(CASE WHEN s.label = f.legacy_class THEN 1.0 ELSE 0.0 END) FROM flowers f JOIN mad_out_labels__shadow s USING (id) WHERE f.legacy_class IS NOT NULL
            """);
        var agreement = await deployments.LegacyAgreementAsync("labels", Ct);
        Assert.Equal([("champion", 1, expected[0].Rows), ("canary", 3, expected[1].Rows), ("shadow", 2, 1800L)],
            agreement.Select(a => (a.Arm, a.ModelVersion, a.RowsCompared)));
        Assert.Equal(1800L, expected.Sum(e => e.Rows));
        Assert.All(agreement, a => Assert.Null(a.MeanAbsoluteDifference));
        Assert.Equal(expected[0].Equal, agreement[0].ShareEqual!.Value, 9);
        Assert.Equal(expected[1].Equal, agreement[1].ShareEqual!.Value, 9);
        // Of the keys with a legacy value (id % 10 <> 7, all of the others odd) a quarter / 0.9 disagree: 1 − 0.25 / 0.9 =
        // 0.722 expected; one arm's ~900 keys spread it by about ±0.015 (σ), so this band is about ±5σ.
        Assert.InRange(agreement[0].ShareEqual!.Value, 0.64, 0.80);
        Assert.Equal(shadowExpected, agreement[2].ShareEqual!.Value, 9);
        var scores = await deployments.LegacyAgreementAsync("scores", Ct);
        Assert.All(scores.Where(a => a.Arm != Arms.Shadow), a => Assert.Equal(0.25, a.MeanAbsoluteDifference!.Value, 5));
        Assert.All(scores, a => Assert.Null(a.ShareEqual));

        // The report: per arm, both tables' agreement (labels from one, values from the other).
        var report = await deployments.ReportAsync("churn", "production", Ct);
        Assert.Equal(["champion", "canary", "shadow"], report.Select(r => r.Arm));
        Assert.Equal(expected[0].Equal, report[0].LegacyShareEqual!.Value, 9);
        Assert.Equal(0.25, report[0].LegacyMeanAbsoluteDifference!.Value, 5);
        Assert.Equal(expected[1].Equal, report[1].LegacyShareEqual!.Value, 9);
        Assert.Equal(shadowExpected, report[2].LegacyShareEqual!.Value, 9);
        Assert.NotNull(report[2].LegacyMeanAbsoluteDifference);

        // Null forgets it: no rows, and the report drops its part.
        await deployments.SetLegacyColumnAsync("labels", null, cancellationToken: Ct);
        Assert.Empty(await deployments.LegacyAgreementAsync("labels", Ct));
        Assert.Null((await deployments.ReportAsync("churn", "production", Ct))[0].LegacyShareEqual);
    }

    [Fact(Timeout = 120_000)]
    public async Task Bad_input_is_a_clear_error_naming_what_exists_and_changes_nothing()
    {
        var deployments = new SqliteDeployments(_registry);
        var tables = new SqlitePredictionTables(_registry);
        await deployments.DeployAsync("churn", "production", 1, cancellationToken: Ct);
        await tables.CreateAsync(new("labels", "flowers", ["id"], "churn", FeatureMapping.Parse(Batch.BatchTables.IrisFeatures)), Ct);
        await tables.RefreshAsync("labels", cancellationToken: Ct);
        await deployments.SetLegacyColumnAsync("labels", "legacy_class", cancellationToken: Ct);

        async Task<ModelAsDataException> Fails(Func<Task> call) => await Assert.ThrowsAsync<ModelAsDataException>(call);
        var column = await Fails(() => deployments.SetLegacyColumnAsync("labels", "legacy", cancellationToken: Ct));
        Assert.Equal(ErrorCode.NotFound, column.Code);
        Assert.Equal("Source flowers has no column legacy; its columns are id, sepal_length, sepal_width, petal_length, petal_width, legacy_class, legacy_score, legacy_note.", column.Message);
        // The source, or a table that does not exist, where a prediction table goes: the prediction tables are named.
        foreach (var wrong in new[] { "flowers", "mad_out_labels", "nosuch" })
        {
            var table = await Fails(() => deployments.SetLegacyColumnAsync(wrong, "legacy_class", cancellationToken: Ct));
            Assert.Equal(ErrorCode.NotFound, table.Code);
            Assert.StartsWith($"No prediction table '{wrong}' (tables: labels).", table.Message, StringComparison.Ordinal);
            Assert.Equal(ErrorCode.NotFound, (await Fails(() => deployments.LegacyAgreementAsync(wrong, Ct))).Code);
        }

        var output = await Fails(() => deployments.SetLegacyColumnAsync("labels", "legacy_class", "probability", Ct));
        Assert.Equal(ErrorCode.InvalidArgument, output.Code);
        Assert.Equal("Prediction table 'labels' has no output column probability to compare with the legacy column legacy_class (integer); "
            + "its outputs are label (integer), probability_0 (real), probability_1 (real), probability_2 (real).", output.Message);
        // A label column with no label output of its kind is refused the same way; a key is not an output.
        Assert.Equal(ErrorCode.InvalidArgument, (await Fails(() => deployments.SetLegacyColumnAsync("labels", "legacy_class", "id", Ct))).Code);
        // Nothing of the refused calls was recorded.
        Assert.Equal(new LegacyColumn("labels", "legacy_class", "label"), await deployments.GetLegacyColumnAsync("labels", Ct));

        // A named column that later leaves the source: the agreement says so and what to do, not "no such column".
        await deployments.SetLegacyColumnAsync("labels", "legacy_note", cancellationToken: Ct);
        await _registry.Connection.ExecuteAsync("ALTER TABLE flowers DROP COLUMN legacy_note");
        var gone = await Fails(() => deployments.LegacyAgreementAsync("labels", Ct));
        Assert.Equal(ErrorCode.Conflict, gone.Code);
        Assert.Contains("Source flowers has no column legacy_note", gone.Message, StringComparison.Ordinal);
        Assert.Contains("mad tables legacy labels --forget", gone.Message, StringComparison.Ordinal);
    }

    [Fact(Timeout = 120_000)]
    public async Task Mad_tables_legacy_and_deploy_status_on_a_sqlite_file()
    {
        var tables = new SqlitePredictionTables(_registry);
        await new SqliteDeployments(_registry).DeployAsync("churn", "production", 1, cancellationToken: Ct);
        await tables.CreateAsync(new("labels", "flowers", ["id"], "churn", FeatureMapping.Parse(Batch.BatchTables.IrisFeatures)), Ct);
        await tables.RefreshAsync("labels", cancellationToken: Ct);
        await _registry.Connection.ExecuteAsync("UPDATE flowers SET legacy_class = (SELECT o.label FROM mad_out_labels o WHERE o.id = flowers.id) WHERE id <= 1000");
        await _registry.DisposeAsync(); // the CLI opens the file itself
        async Task<(int Code, string Output)> Mad(params string[] args)
        {
            using var console = new Spectre.Console.Testing.TestConsole();
            console.Profile.Width = 240;
            using var output = new StringWriter();
            var code = await ModelAsData.Cli.MadCommand.Create(console).Parse([.. args, "--db", _path]).InvokeAsync(new System.CommandLine.InvocationConfiguration { Output = output, Error = output }, Ct);
            return (code, console.Output + output);
        }

        Assert.Contains("labels names no legacy column", (await Mad("tables", "legacy", "labels")).Output, StringComparison.Ordinal);
        var named = await Mad("tables", "legacy", "labels", "legacy_class");
        Assert.Equal(0, named.Code);
        Assert.Contains("labels: legacy column legacy_class, compared with label.", named.Output, StringComparison.Ordinal);
        Assert.Matches(@"champion\s*│\s*1\s*│\s*1000\s*│\s*100 %", named.Output);
        var status = await Mad("deploy", "status", "churn", "production");
        Assert.Contains("equal to legacy", status.Output, StringComparison.Ordinal);
        Assert.Contains("100 %", status.Output, StringComparison.Ordinal);

        var unknown = await Mad("tables", "legacy", "labels", "old_flag");
        Assert.NotEqual(0, unknown.Code);
        Assert.Contains("Source flowers has no column old_flag; its columns are id,", unknown.Output, StringComparison.Ordinal);
        var wrong = await Mad("tables", "legacy", "flowers", "legacy_class");
        Assert.NotEqual(0, wrong.Code);
        Assert.Contains("No prediction table 'flowers' (tables: labels)", wrong.Output, StringComparison.Ordinal);
        Assert.Contains("compared with label", (await Mad("tables", "legacy", "labels")).Output, StringComparison.Ordinal); // still named

        Assert.Contains("labels names no legacy column", (await Mad("tables", "legacy", "labels", "--forget")).Output, StringComparison.Ordinal);
        Assert.DoesNotContain("equal to legacy", (await Mad("deploy", "status", "churn", "production")).Output, StringComparison.Ordinal);
        Assert.Contains("--output", (await Mad("tables", "legacy", "--help")).Output, StringComparison.Ordinal);
    }
}

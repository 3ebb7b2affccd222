using ModelAsData.IntegrationTests.Batch;
using ModelAsData.IntegrationTests.Requests;

namespace ModelAsData.IntegrationTests.Cli;

/// <summary>
/// The <c>mad</c> verbs an application or a DBA runs work with <c>--db</c> pointed at PgBouncer in transaction mode
/// (only <c>mad serve</c> needs a direct connection: <see cref="ServeThroughPoolerTests"/>): push and alias a model,
/// create, refresh (waiting for the job), watch and inspect a prediction table, predict one row, list jobs.
/// </summary>
public sealed class CliThroughPoolerTests(PostgresDatabase database, PgBouncer pgBouncer) : MadCliTests(database), IClassFixture<PgBouncer>
{
    [Fact(Timeout = 120_000)]
    public async Task The_mad_verbs_but_serve_work_through_pgbouncer_in_transaction_mode()
    {
        await using var sidecar = await RequestSupport.StartSidecarAsync(Database);
        var admin = new NpgsqlConnectionStringBuilder(Database.ConnectionString);
        var db = pgBouncer.ConnectionString(admin.Username!, admin.Database!);
        var model = Sql.UniqueName("iris");
        var source = await BatchTables.CreateFlowersAsync(Database.DataSource, 40);
        var name = Sql.UniqueName("scores");

        await PassesAsync(db, "Pushed", "models", "push", model, Path.Combine(TestModels.Folder, "skl2onnx_rf_iris.onnx"), "--alias", "production");
        await PassesAsync(db, "\"label\":0", "predict", model, "--json", RequestSupport.Setosa);
        await PassesAsync(db, $"mad_out.{name}", "tables", "create", name, "--model", model, "--source", source, "--key", "id", "--features", BatchTables.IrisFeatures);
        await PassesAsync(db, "scored 40 rows", "tables", "refresh", name, "--wait");
        await PassesAsync(db, "Watching", "tables", "watch", name);
        await PassesAsync(db, "watched", "tables", "status", name);
        await PassesAsync(db, name, "jobs");
        await Database.DataSource.ExecuteAsync($"INSERT INTO public.{source} VALUES (41, 6.3, 3.3, 6.0, 2.5)");
        Assert.Equal(2L, await Eventually.WaitForAsync(
            () => Database.DataSource.ScalarAsync<long?>($"SELECT label FROM mad_out.{name} WHERE id = 41"), l => l is not null, "the watched row's prediction"));
    }

    private static async Task PassesAsync(string db, string expected, params string[] args)
    {
        var (exitCode, output) = await RunWithDbAsync(db, args);
        Assert.True(exitCode == 0, $"mad {string.Join(' ', args)} through PgBouncer exited with {exitCode}: {output}");
        Assert.Contains(expected, output, StringComparison.Ordinal);
    }
}

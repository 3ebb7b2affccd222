using System.Globalization;
using ModelAsData.IntegrationTests.Batch;

namespace ModelAsData.IntegrationTests.Hostile;

/// <summary>
/// The CLI verbs DESIGN.md gives a user keep working as a login holding only mad_user, now that it reads less of the
/// mad.* tables (008_readers_see_their_own.sql): `mad models list / show`, `mad tables refresh / status`,
/// `mad jobs [follow]` and `mad predict`, on a prediction table it owns.
/// </summary>
public sealed class ReaderCliTests(PostgresDatabase database) : MadCliTests(database)
{
    [Fact(Timeout = 120_000)]
    public async Task A_mad_user_runs_its_verbs_on_its_own_table()
    {
        var (model, tables) = await BatchTables.ReadyModelAsync(Database);
        var source = await BatchTables.CreateFlowersAsync(Database.DataSource, 50);
        var name = Sql.UniqueName("mine");
        await BatchTables.CreateAsync(tables, name, source, model);
        await using var roles = new HostileRoles(Database);
        var (login, _) = await roles.LoginAsync("analyst", "IN ROLE mad_user");
        // The owner goes to mad_reader (NOINHERIT), as mad.create_prediction_table does. Granting it to mad_sidecar
        // instead gave every sidecar login of the shared cluster mad_user's rights while this test ran, which
        // ManagedInstallTests' login check then reported.
        await Database.DataSource.ExecuteAsync($"GRANT USAGE ON SCHEMA public TO {login}; GRANT SELECT ON public.{source} TO {login}; GRANT {login} TO mad_reader");
        await Database.DataSource.ExecuteAsync("UPDATE mad.prediction_tables SET owner = @login WHERE name = @name", new { login, name });
        var db = Database.ConnectionStringFor(login, HostileRoles.Password);
        await using var sidecar = await RunningSidecar.StartAsync(Database.ConnectionString);

        var list = await RunWithDbAsync(db, "models", "list");
        var show = await RunWithDbAsync(db, "models", "show", $"{model}@1");
        var refresh = await RunWithDbAsync(db, "tables", "refresh", name);
        var job = await Database.DataSource.ScalarAsync<long>("SELECT max(id) FROM mad.jobs WHERE prediction_table = @name", new { name });
        var follow = await RunWithDbAsync(db, "jobs", "follow", job.ToString(CultureInfo.InvariantCulture));
        var jobs = await RunWithDbAsync(db, "jobs");
        var status = await RunWithDbAsync(db, "tables", "status", name);
        var predict = await RunWithDbAsync(db, "predict", model, "--json", """{"float_input": [5.1, 3.5, 1.4, 0.2]}""");

        foreach (var (exitCode, output) in new[] { list, show, refresh, follow, jobs, status, predict })
        {
            Assert.True(exitCode == 0, output);
        }

        Assert.Contains(model, list.Output, StringComparison.Ordinal);
        Assert.Contains("ready", show.Output, StringComparison.Ordinal);
        Assert.Contains(name, jobs.Output, StringComparison.Ordinal);
        Assert.Contains("done", follow.Output, StringComparison.Ordinal);
        Assert.Contains("\"version\": 1", predict.Output.Replace("\"version\":1", "\"version\": 1", StringComparison.Ordinal), StringComparison.Ordinal);
        Assert.Equal(50L, await Database.DataSource.ScalarAsync<long>($"SELECT count(*) FROM mad_out.{name}"));
    }
}

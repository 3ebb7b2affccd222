using ModelAsData.IntegrationTests.Batch;
using ModelAsData.Postgres;
using ModelAsData.Postgres.Jobs;
using ModelAsData.Sidecar;
using static ModelAsData.IntegrationTests.Requests.RequestSupport;

namespace ModelAsData.IntegrationTests.Hostile;

/// <summary>
/// Installing as on managed PostgreSQL (RDS's master user, Azure's admin, Supabase's <c>postgres</c>): a login with
/// CREATEDB and CREATEROLE but not superuser creates the database, runs <c>mad db migrate</c>, and everything works
/// with a sidecar that logs in as a plain login granted <c>mad_sidecar</c>. The group roles already exist
/// cluster-wide, created by the fixture's superuser for this class's own database: the installer did not create them
/// (PostgreSQL 15 lets a CREATEROLE role grant and comment on them all the same).
/// </summary>
public sealed class ManagedInstallTests(PostgresDatabase database) : MadCliTests(database)
{
    private const string Password = "test-only";

    [Fact(Timeout = 180_000)]
    public Task A_createrole_login_installs_where_the_group_roles_exist_made_by_another_role_and_a_non_superuser_sidecar_serves_every_door() =>
        InstallAndServeAsync(Database.Server.AdminConnectionString);

    [Fact(Timeout = 180_000)]
    public async Task A_createrole_login_installs_on_a_cluster_without_the_group_roles_and_a_non_superuser_sidecar_serves_every_door()
    {
        // The roles are cluster-wide and the shared server has them: a cluster of its own, where the installer makes them.
        var bin = ThrowawayCluster.FindBinaries() ?? throw new InvalidOperationException(
            "This test starts a PostgreSQL cluster of its own, where the mad roles do not exist yet: install PostgreSQL's server binaries (apt-get install postgresql) or set MAD_TEST_PG_BIN.");
        await using var cluster = await ThrowawayCluster.StartAsync(bin);
        await using (var fresh = NpgsqlDataSource.Create(cluster.ConnectionString))
        {
            Assert.False(await fresh.ScalarAsync<bool>("SELECT EXISTS (SELECT FROM pg_roles WHERE rolname IN ('mad_admin', 'mad_user', 'mad_sidecar'))"));
        }

        await InstallAndServeAsync(cluster.ConnectionString);
        NpgsqlConnection.ClearAllPools();
    }

    /// <summary>On the server of <paramref name="superuserConnectionString"/>: a CREATEDB + CREATEROLE login installs, and every door works.</summary>
    private static async Task InstallAndServeAsync(string superuserConnectionString)
    {
        var installer = Sql.UniqueName("rds_master");
        var sidecarLogin = Sql.UniqueName("mad_engine");
        var appLogin = Sql.UniqueName("app");
        var tableOwner = Sql.UniqueName("analytics");
        await using var superuser = NpgsqlDataSource.Create(superuserConnectionString);
        await superuser.ExecuteAsync($"CREATE ROLE {installer} LOGIN CREATEDB CREATEROLE PASSWORD '{Password}'");
        var dbName = Sql.UniqueName("mad_managed");
        var installerAdmin = new NpgsqlConnectionStringBuilder(superuserConnectionString) { Username = installer, Password = Password, Pooling = false };
        try
        {
            await using (var maintenance = NpgsqlDataSource.Create(installerAdmin.ConnectionString))
            {
                await maintenance.ExecuteAsync($"CREATE DATABASE {dbName}");
            }

            var asInstaller = new NpgsqlConnectionStringBuilder(installerAdmin.ConnectionString) { Database = dbName }.ConnectionString;
            var (exitCode, output) = await RunWithDbAsync(asInstaller, "db", "migrate");
            Assert.True(exitCode == 0, output);
            Assert.Equal(0, (await RunWithDbAsync(asInstaller, "db", "migrate")).ExitCode); // a second run changes nothing

            // The documented setup (docs/SECURITY.md, "Installing on managed PostgreSQL"), as the installer types it.
            await using var installerSource = PostgresDataSource.Create(asInstaller);
            await installerSource.ExecuteAsync($"""
                GRANT mad_admin TO {installer};
                CREATE ROLE {sidecarLogin} LOGIN PASSWORD '{Password}' IN ROLE mad_sidecar;
                CREATE ROLE {appLogin} LOGIN PASSWORD '{Password}' IN ROLE mad_user;
                """);
            Assert.False(await superuser.ScalarAsync<bool>($"SELECT rolsuper FROM pg_roles WHERE rolname = '{sidecarLogin}'"));

            // mad serve's check of its login: nothing to say for the sidecar's login, and what is too much for the others.
            var asSidecar = new NpgsqlConnectionStringBuilder(asInstaller) { Username = sidecarLogin, Password = Password }.ConnectionString;
            await using (var sidecarSource = PostgresDataSource.Create(asSidecar))
            {
                Assert.Empty(await SidecarLogin.ExcessAsync(sidecarSource, Ct));
            }

            var installerExcess = string.Join(" | ", await SidecarLogin.ExcessAsync(installerSource, Ct));
            foreach (var expected in new[] { "CREATEROLE, CREATEDB", "owns schema mad", "rights of mad_admin", "not a member of mad_sidecar", "CREATE ROLE mad_engine LOGIN" })
            {
                Assert.Contains(expected, installerExcess, StringComparison.Ordinal);
            }

            await using (var superuserHere = NpgsqlDataSource.Create(new NpgsqlConnectionStringBuilder(superuserConnectionString) { Database = dbName }.ConnectionString))
            {
                Assert.Contains("a superuser", Assert.Single(await SidecarLogin.ExcessAsync(superuserHere, Ct)), StringComparison.Ordinal);
            }

            var options = new SidecarOptions { PollInterval = TimeSpan.FromSeconds(1), SidecarId = Sql.UniqueName("managed") };
            await using var sidecar = await RunningSidecar.StartAsync(asSidecar, options);

            // Push (validated by the non-superuser sidecar), alias.
            var model = Sql.UniqueName("iris");
            Assert.Equal(0, (await RunWithDbAsync(asInstaller, "models", "push", model, Path.Combine(TestModels.Folder, "skl2onnx_rf_iris.onnx"))).ExitCode);
            var registry = new PostgresModelRegistry(installerSource);
            await registry.WaitForValidationAsync(model, 1, TimeSpan.FromSeconds(60), Ct);
            var alias = await RunWithDbAsync(asInstaller, "models", "alias", model, "production", "1");
            Assert.True(alias.ExitCode == 0, alias.Output);

            // The installer owns schema mad and every definer and has CREATEROLE: the sidecar, which reads as a
            // table's owner, must never become it, so a table created as the installer is refused.
            var flowers = await BatchTables.CreateFlowersAsync(installerSource, 30);
            var name = Sql.UniqueName("managed_scores");
            var create = $"SELECT mad.create_prediction_table('{name}', 'public.{flowers}', '{{id}}', '{model}', '{BatchTables.IrisFeatures}')";
            var asInstallerCreated = await installerSource.FailsAsync(create);
            Assert.Equal(PostgresErrorCodes.InsufficientPrivilege, asInstallerCreated.SqlState);
            Assert.Contains($"may not belong to role {installer}: it owns schema mad", asInstallerCreated.MessageText, StringComparison.Ordinal);
            Assert.Contains($"plain role that has SELECT on public.{flowers}", asInstallerCreated.Hint, StringComparison.Ordinal);

            // The documented way: a plain role owns the table and has SELECT (and TRIGGER, to watch) on the source. The
            // sidecar reads as it, so its own login needs no SELECT on the source (docs/SECURITY.md, "How the sidecar
            // reads as the owner").
            await installerSource.ExecuteAsync($"""
                CREATE ROLE {tableOwner} NOLOGIN IN ROLE mad_admin;
                GRANT {tableOwner} TO {installer};
                GRANT SELECT, TRIGGER ON public.{flowers} TO {tableOwner};
                """);
            Assert.False(await installerSource.ScalarAsync<bool>($"SELECT has_table_privilege('{sidecarLogin}', 'public.{flowers}', 'SELECT')"));
            await installerSource.ExecuteAsync($"SET ROLE {tableOwner}; {create}; RESET ROLE");
            Assert.Equal(tableOwner, await installerSource.ScalarAsync<string>("SELECT owner FROM mad.prediction_tables WHERE name = @name", new { name }));
            var tables = new PostgresPredictionTables(registry, TimeSpan.FromMilliseconds(50));
            var job = await BatchTables.WaitAsync(tables, await tables.StartRefreshAsync(name, Ct), seconds: 60);
            Assert.True(job.State == "done", $"{job.State}: {job.Error}");
            await BatchTables.AssertOnePredictionPerRowAsync(installerSource, flowers, name);
            await installerSource.ExecuteAsync($"SET ROLE {tableOwner}; SELECT mad.watch('{name}'); RESET ROLE");
            await installerSource.ExecuteAsync($"INSERT INTO public.{flowers} VALUES (1000, 5.1, 3.5, 1.4, 0.2)");
            await Eventually.WaitForAsync(() => installerSource.ScalarAsync<long>($"SELECT count(*) FROM mad_out.{name} WHERE id = 1000"), n => n == 1,
                "the streamed row's prediction", TimeSpan.FromSeconds(30));

            // The attack: the sidecar's login tries to become the installer, to redefine a definer or to make roles.
            await using (var sidecarSource = PostgresDataSource.Create(asSidecar))
            {
                const string Definition = "SELECT pg_get_functiondef('mad.resolve_reference(text)'::regprocedure)";
                var before = await installerSource.ScalarAsync<string>(Definition);
                foreach (var attack in new[]
                         {
                             $"SET ROLE {installer}; CREATE OR REPLACE FUNCTION mad.resolve_reference(reference text) RETURNS int LANGUAGE sql AS 'SELECT 1'",
                             $"SET ROLE {installer}; CREATE ROLE {sidecarLogin}_evil LOGIN PASSWORD 'x' IN ROLE mad_admin",
                             $"SET ROLE {installer}; ALTER ROLE {sidecarLogin} CREATEROLE",
                         })
                {
                    var refused = await sidecarSource.FailsAsync(attack);
                    Assert.Equal(PostgresErrorCodes.InsufficientPrivilege, refused.SqlState);
                    Assert.Contains($"permission denied to set role \"{installer}\"", refused.MessageText, StringComparison.Ordinal);
                }

                Assert.Equal(before, await installerSource.ScalarAsync<string>(Definition));
                Assert.False(await installerSource.ScalarAsync<bool>($"SELECT EXISTS (SELECT FROM pg_roles WHERE rolname = '{sidecarLogin}_evil')"));
                Assert.False(await installerSource.ScalarAsync<bool>($"SELECT rolcreaterole FROM pg_roles WHERE rolname = '{sidecarLogin}'"));
                Assert.False(await installerSource.ScalarAsync<bool>($"SELECT pg_has_role('mad_reader', '{installer}', 'MEMBER')"));
            }

            // CALL mad.predict, as an application's login.
            await Eventually.WaitForAsync(
                () => installerSource.ScalarAsync<bool>("SELECT EXISTS (SELECT FROM mad.request_workers w WHERE w.sidecar = @id AND mad.ticket_held(w.ticket))", new { id = options.SidecarId }),
                held => held, "the sidecar's request worker to be armed");
            await using var app = PostgresDataSource.Create(new NpgsqlConnectionStringBuilder(asInstaller) { Username = appLogin, Password = Password }.ConnectionString);
            var answer = System.Text.Json.Nodes.JsonNode.Parse(await CallAsync(app, model, Setosa))!;
            Assert.Equal(0, answer["label"]!.GetValue<long>());
        }
        finally
        {
            NpgsqlConnection.ClearAllPools();
            await superuser.ExecuteAsync($"DROP DATABASE IF EXISTS {dbName} WITH (FORCE)");
            foreach (var role in new[] { appLogin, sidecarLogin, tableOwner, installer })
            {
                await superuser.ExecuteAsync($"DROP ROLE IF EXISTS {role}");
            }
        }
    }
}

using ModelAsData.Postgres;
using ModelAsData.Postgres.Migrations;

namespace ModelAsData.IntegrationTests.Postgres;

/// <summary>Each test migrates a database of its own.</summary>
public sealed class MigrationTests(PostgresServer server)
{
    private const string Objects = """
        SELECT string_agg(kind || ' ' || name, ', ' ORDER BY kind, name) FROM (
          SELECT 'table' AS kind, c.relname::text AS name FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
          WHERE n.nspname = 'mad' AND c.relkind = 'r'
          UNION ALL
          SELECT 'function', p.oid::regprocedure::text FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = 'mad'
          UNION ALL
          SELECT 'schema', nspname::text FROM pg_namespace WHERE nspname IN ('mad', 'mad_out')
          UNION ALL
          SELECT 'role', rolname::text FROM pg_roles WHERE rolname IN ('mad_admin', 'mad_user', 'mad_sidecar')
        ) o
        """;

    [Fact(Timeout = 90_000)]
    public async Task Migrating_twice_applies_each_script_once_and_changes_nothing_the_second_time()
    {
        await using var dataSource = PostgresDataSource.Create(await server.CreateDatabaseAsync("migrate"));
        var migrator = new PostgresMigrator(dataSource);

        var first = await migrator.MigrateAsync(TestContext.Current.CancellationToken);
        var objects = await dataSource.ScalarAsync<string>(Objects);
        var second = await migrator.MigrateAsync(TestContext.Current.CancellationToken);

        Assert.Equal(migrator.Scripts.Select(s => s.Name), first);
        Assert.Empty(second);
        Assert.Equal(objects, await dataSource.ScalarAsync<string>(Objects));
        foreach (var expected in new[] { "table models", "table model_versions", "table aliases", "table alias_history", "table sidecars",
                     "table schema_migrations", "schema mad", "schema mad_out", "role mad_admin", "role mad_user", "role mad_sidecar",
                     "function mad.push_model(text,bytea,jsonb)", "function mad.set_alias(text,text,integer,text)",
                     "function mad.rollback_alias(text,text)", "function mad.alias_at(text,text,timestamp with time zone)" })
        {
            Assert.Contains(expected, objects, StringComparison.Ordinal);
        }

        var journal = await dataSource.QueryAsync<(string Name, string Checksum)>("SELECT name, checksum FROM mad.schema_migrations ORDER BY name");
        Assert.Equal(migrator.Scripts.Select(s => (s.Name, s.Checksum)), journal);
    }

    [Fact(Timeout = 90_000)]
    public async Task Two_concurrent_migrations_apply_each_script_exactly_once()
    {
        var connectionString = await server.CreateDatabaseAsync("concurrent");
        await using var one = PostgresDataSource.Create(connectionString);
        await using var two = PostgresDataSource.Create(connectionString);

        var results = await Task.WhenAll(
            Task.Run(() => new PostgresMigrator(one).MigrateAsync(TestContext.Current.CancellationToken)),
            Task.Run(() => new PostgresMigrator(two).MigrateAsync(TestContext.Current.CancellationToken)));

        var scripts = MigrationScript.LoadEmbedded().Select(s => s.Name).ToList();
        Assert.Equal(scripts, results.SelectMany(r => r).Order(StringComparer.Ordinal));
        Assert.Empty(results[0].Intersect(results[1]));
        Assert.Equal(scripts.Count, await one.ScalarAsync<int>("SELECT count(*) FROM mad.schema_migrations"));
        Assert.Equal(1, await one.ScalarAsync<int>("SELECT count(*) FROM pg_proc WHERE proname = 'push_model'"));
    }

    [Fact(Timeout = 90_000)]
    public async Task Migrations_of_different_databases_on_one_server_may_run_at_once()
    {
        // The roles are cluster-wide: creating them from two databases at the same moment must not fail.
        var databases = await Task.WhenAll(server.CreateDatabaseAsync("para"), server.CreateDatabaseAsync("parb"), server.CreateDatabaseAsync("parc"));
        await Task.WhenAll(databases.Select(async d =>
        {
            await using var dataSource = PostgresDataSource.Create(d);
            await new PostgresMigrator(dataSource).MigrateAsync(TestContext.Current.CancellationToken);
        }));
    }

    [Fact(Timeout = 90_000)]
    public async Task A_changed_script_that_was_already_applied_is_refused()
    {
        await using var dataSource = PostgresDataSource.Create(await server.CreateDatabaseAsync("checksum"));
        await new PostgresMigrator(dataSource).MigrateAsync(TestContext.Current.CancellationToken);
        var edited = MigrationScript.LoadEmbedded()
            .Select((s, i) => i == 1 ? MigrationScript.FromText(s.Name, s.Sql + "\n-- edited after it was applied\n") : s)
            .ToList();

        var error = await Assert.ThrowsAsync<ModelAsDataException>(() => new PostgresMigrator(dataSource, scripts: edited).MigrateAsync(TestContext.Current.CancellationToken));

        Assert.Equal(ErrorCode.Conflict, error.Code);
        Assert.Contains(edited[1].Name, error.Message, StringComparison.Ordinal);
        Assert.Contains("new numbered script", error.Message, StringComparison.Ordinal);
    }

    [Fact(Timeout = 90_000)]
    public async Task A_failing_script_leaves_nothing_behind_and_is_not_recorded()
    {
        await using var dataSource = PostgresDataSource.Create(await server.CreateDatabaseAsync("failing"));
        var scripts = MigrationScript.LoadEmbedded().Append(MigrationScript.FromText("999_broken.sql", "CREATE TABLE mad.half_done (id int); SELECT 1/0;")).ToList();

        var error = await Assert.ThrowsAsync<ModelAsDataException>(() => new PostgresMigrator(dataSource, scripts: scripts).MigrateAsync(TestContext.Current.CancellationToken));

        Assert.Contains("Migration 999_broken.sql failed and was rolled back", error.Message, StringComparison.Ordinal);
        Assert.Contains("division by zero", error.Message, StringComparison.Ordinal);

        Assert.Null(await dataSource.ScalarAsync<string?>("SELECT to_regclass('mad.half_done')::text"));
        Assert.Equal(0, await dataSource.ScalarAsync<int>("SELECT count(*) FROM mad.schema_migrations WHERE name = '999_broken.sql'"));
        Assert.Equal(scripts.Count - 1, await dataSource.ScalarAsync<int>("SELECT count(*) FROM mad.schema_migrations"));
    }

    [Fact(Timeout = 90_000)]
    public async Task Registry_migrate_goes_through_the_same_runner()
    {
        var connectionString = await server.CreateDatabaseAsync("registry");
        await using (var registry = await ModelAsData.Postgres.Registry.PostgresModelRegistry.OpenAsync(connectionString, TestContext.Current.CancellationToken))
        {
            await registry.MigrateAsync(TestContext.Current.CancellationToken);
            await registry.MigrateAsync(TestContext.Current.CancellationToken);
            Assert.Equal("postgres", registry.Kind);
        }

        await using var dataSource = NpgsqlDataSource.Create(connectionString);
        Assert.Equal(MigrationScript.LoadEmbedded().Count, await dataSource.ScalarAsync<int>("SELECT count(*) FROM mad.schema_migrations"));
    }
}

namespace ModelAsData.IntegrationTests.Cli;

/// <summary>
/// <c>mad serve</c> pointed at PgBouncer refuses to start and says to connect directly, whether PgBouncer refuses the
/// sidecar's startup parameters (its default) or lets them through (told to ignore them).
/// </summary>
public sealed class ServeThroughPoolerTests(PostgresDatabase database, PgBouncer pgBouncer) : MadCliTests(database), IClassFixture<PgBouncer>
{
    [Fact(Timeout = 60_000)]
    public async Task Mad_serve_pointed_at_pgbouncer_refuses_and_says_to_use_a_direct_connection_string()
    {
        var admin = new NpgsqlConnectionStringBuilder(Database.ConnectionString);

        var (exitCode, output) = await RunWithDbAsync(pgBouncer.ConnectionString(admin.Username!, admin.Database!), "serve");

        Assert.NotEqual(0, exitCode);
        Assert.Contains("through a connection pooler", output, StringComparison.Ordinal);
        Assert.Contains("unsupported startup parameter", output, StringComparison.Ordinal);
        Assert.Contains("point --db at PostgreSQL itself", output, StringComparison.Ordinal);

        await using var lenient = await PgBouncer.StartIgnoringSessionParametersAsync(Database.Server);
        (exitCode, output) = await RunWithDbAsync(lenient.ConnectionString(admin.Username!, admin.Database!), "serve");

        Assert.NotEqual(0, exitCode);
        Assert.Contains("through a connection pooler", output, StringComparison.Ordinal);
        Assert.Contains("but the server session that answers is pid", output, StringComparison.Ordinal);
        Assert.Contains("point --db at PostgreSQL itself", output, StringComparison.Ordinal);
        Assert.Equal(0L, await Database.DataSource.ScalarAsync<long>("SELECT count(*) FROM mad.sidecars"));
    }
}

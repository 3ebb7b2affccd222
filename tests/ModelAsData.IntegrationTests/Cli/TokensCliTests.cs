using ModelAsData.IntegrationTests.Hostile;

namespace ModelAsData.IntegrationTests.Cli;

/// <summary><c>mad tokens create | list | revoke</c> through the real parser, against PostgreSQL and a SQLite file.</summary>
public sealed class TokensCliTests(PostgresDatabase database) : MadCliTests(database)
{
    [Fact(Timeout = 60_000)]
    public async Task Create_prints_the_token_once_list_never_shows_it_and_revoke_ends_it()
    {
        await using var roles = new HostileRoles(Database);
        var role = await roles.GroupAsync("scorer", "IN ROLE mad_user");
        var label = Sql.UniqueName("app").Replace('_', '-');

        var created = await RunAsync("tokens", "create", "--role", role, "--label", label, "--expires", "2099-01-01T00:00Z");
        var token = created.Output.Split('\n')[0].Trim();
        var list = await RunAsync("tokens", "list");
        var again = await RunAsync("tokens", "create", "--role", role, "--label", label);
        var revoked = await RunAsync("tokens", "revoke", label);
        var listAfter = await RunAsync("tokens", "list");
        var revokedTwice = await RunAsync("tokens", "revoke", label);

        Assert.Equal(0, created.ExitCode);
        Assert.Matches("^mad_[0-9a-f]{64}$", token);
        Assert.Equal(Hash(token), await Database.DataSource.ScalarAsync<string>("SELECT token_sha256 FROM mad.http_tokens WHERE label = @label", new { label }));
        Assert.Equal(0, list.ExitCode);
        Assert.Contains(label, list.Output, StringComparison.Ordinal);
        Assert.Contains("live", list.Output, StringComparison.Ordinal);
        Assert.DoesNotContain(token, list.Output, StringComparison.Ordinal);
        Assert.Equal(15, again.ExitCode); // Conflict
        Assert.Contains("exists already", again.Output, StringComparison.Ordinal);
        Assert.Equal(0, revoked.ExitCode);
        Assert.Contains("revoked", listAfter.Output, StringComparison.Ordinal);
        Assert.Equal(12, revokedTwice.ExitCode); // NotFound
        Assert.Contains("no live token", revokedTwice.Output, StringComparison.Ordinal);
    }

    [Fact(Timeout = 60_000)]
    public async Task A_role_that_does_not_exist_gets_no_token()
    {
        var result = await RunAsync("tokens", "create", "--role", "no_such_role_anywhere", "--label", "x");

        Assert.Equal(18, result.ExitCode); // InvalidArgument
        Assert.Contains("Role 'no_such_role_anywhere' does not exist", result.Output, StringComparison.Ordinal);
    }

    [Fact(Timeout = 60_000)]
    public async Task On_sqlite_tokens_say_there_is_no_http_door()
    {
        var file = Path.Combine(Path.GetTempPath(), $"{Guid.NewGuid():N}.db");
        try
        {
            var result = await RunWithDbAsync(file, "tokens", "list");

            Assert.Equal(20, result.ExitCode); // NotSupported
            Assert.Contains("SQLite store has no HTTP door", result.Output, StringComparison.Ordinal);
        }
        finally
        {
            File.Delete(file);
        }
    }

    [Fact(Timeout = 60_000)]
    public async Task Help_explains_each_verb()
    {
        var help = await RunAsync("tokens", "create", "--help");

        Assert.Contains("--role", help.Output, StringComparison.Ordinal);
        Assert.Contains("--label", help.Output, StringComparison.Ordinal);
        Assert.Contains("--expires", help.Output, StringComparison.Ordinal);
        Assert.Contains("only its sha256 is stored", help.Output, StringComparison.Ordinal);
    }

    private static string Hash(string token) => Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(System.Text.Encoding.UTF8.GetBytes(token)));
}

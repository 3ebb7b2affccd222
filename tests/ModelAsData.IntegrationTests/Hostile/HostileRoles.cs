using ModelAsData.Postgres;

namespace ModelAsData.IntegrationTests.Hostile;

/// <summary>
/// Roles an attacker holds, created by the fixture's superuser and dropped on dispose: logins (connectable, with a
/// data source each) and group roles (NOLOGIN, to SET ROLE to).
/// </summary>
internal sealed class HostileRoles(PostgresDatabase database) : IAsyncDisposable
{
    internal const string Password = "test-only";
    private readonly List<string> _roles = [];
    private readonly List<NpgsqlDataSource> _sources = [];

    /// <summary>A LOGIN role with the given options (e.g. "NOINHERIT IN ROLE mad_user") and a data source connected as it.</summary>
    public async Task<(string Name, NpgsqlDataSource DataSource)> LoginAsync(string prefix, string options = "")
    {
        var name = await CreateAsync(prefix, $"LOGIN PASSWORD '{Password}' {options}");
        var source = PostgresDataSource.Create(database.ConnectionStringFor(name, Password));
        _sources.Add(source);
        return (name, source);
    }

    /// <summary>A NOLOGIN role, as PostgREST's web_anon.</summary>
    public Task<string> GroupAsync(string prefix, string options = "") => CreateAsync(prefix, $"NOLOGIN {options}");

    private async Task<string> CreateAsync(string prefix, string options)
    {
        var name = Sql.UniqueName(prefix);
        await database.DataSource.ExecuteAsync($"CREATE ROLE {name} {options}");
        _roles.Add(name);
        return name;
    }

    public async ValueTask DisposeAsync()
    {
        foreach (var source in _sources)
        {
            await source.DisposeAsync();
        }

        NpgsqlConnection.ClearAllPools();
        foreach (var role in Enumerable.Reverse(_roles))
        {
            await database.DataSource.ExecuteAsync($"DROP OWNED BY {role}; DROP ROLE IF EXISTS {role}");
        }
    }
}

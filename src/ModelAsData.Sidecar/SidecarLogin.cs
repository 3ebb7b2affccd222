using Dapper;
using Npgsql;

namespace ModelAsData.Sidecar;

/// <summary>
/// What the sidecar's login holds beyond what it needs (<c>mad_sidecar</c>, and SELECT on the sources it reads): a
/// superuser, a role with CREATEROLE, CREATEDB, BYPASSRLS or REPLICATION, the owner of schema <c>mad</c> (whose
/// functions run with its rights), or one with the rights of <c>mad_admin</c> or <c>mad_user</c>. Whatever runs in
/// the sidecar (a model's bytes are parsed there) runs with all of it. <c>mad serve</c> warns about each, and runs.
/// </summary>
public static class SidecarLogin
{
    private const string Describe = """
        SELECT r.rolname AS Login, r.rolsuper AS Superuser, r.rolcreaterole AS CreateRole, r.rolcreatedb AS CreateDb,
               r.rolbypassrls AS BypassRls, r.rolreplication AS Replication,
               pg_catalog.pg_has_role(r.oid, 'mad_sidecar', 'MEMBER') AS Sidecar,
               pg_catalog.pg_has_role(r.oid, 'mad_admin', 'USAGE') AS Admin,
               pg_catalog.pg_has_role(r.oid, 'mad_user', 'USAGE') AS User,
               EXISTS (SELECT FROM pg_catalog.pg_namespace n WHERE n.nspname = 'mad' AND n.nspowner = r.oid) AS OwnsSchema
        FROM pg_catalog.pg_roles r WHERE r.rolname = session_user
        """;

    /// <summary>One sentence per thing the login of <paramref name="dataSource"/> holds and should not; empty when it holds only what it needs.</summary>
    public static async Task<IReadOnlyList<string>> ExcessAsync(NpgsqlDataSource dataSource, CancellationToken cancellationToken)
    {
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken);
        var login = await connection.QuerySingleAsync<LoginRights>(new CommandDefinition(Describe, cancellationToken: cancellationToken));
        var fix = "log the sidecar in as a login that has only mad_sidecar: CREATE ROLE mad_engine LOGIN PASSWORD '...' IN ROLE mad_sidecar; (docs/SECURITY.md, \"Installing on managed PostgreSQL\")";
        var excess = new List<string>();
        if (login.Superuser)
        {
            excess.Add($"The sidecar logs in as {login.Login}, a superuser: everything it runs bypasses every privilege check; {fix}.");
        }

        var attributes = new[] { (login.CreateRole, "CREATEROLE"), (login.CreateDb, "CREATEDB"), (login.BypassRls, "BYPASSRLS"), (login.Replication, "REPLICATION") }
            .Where(a => a.Item1 && !login.Superuser).Select(a => a.Item2).ToList();
        if (attributes.Count > 0)
        {
            excess.Add($"The sidecar's login {login.Login} has {string.Join(", ", attributes)}, which it never uses; {fix}.");
        }

        if (login.OwnsSchema && !login.Superuser)
        {
            excess.Add($"The sidecar's login {login.Login} owns schema mad (it installed it), so every mad function runs with its rights; {fix}.");
        }

        foreach (var (has, role) in new[] { (login.Admin, "mad_admin"), (login.User, "mad_user") })
        {
            if (has && !login.Superuser)
            {
                excess.Add($"The sidecar's login {login.Login} has the rights of {role}, which the sidecar never needs; {fix}.");
            }
        }

        if (!login.Sidecar)
        {
            excess.Add($"The sidecar's login {login.Login} is not a member of mad_sidecar, so the sidecar protocol's functions refuse it: GRANT mad_sidecar TO {login.Login};");
        }

        return excess;
    }

    private sealed record LoginRights(string Login, bool Superuser, bool CreateRole, bool CreateDb, bool BypassRls, bool Replication, bool Sidecar, bool Admin, bool User, bool OwnsSchema);
}

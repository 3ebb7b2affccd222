namespace ModelAsData.IntegrationTests.Hostile;

/// <summary>
/// A view reads its tables with its owner's rights, but the functions it calls run as whoever reads it: a role granted
/// SELECT on a view must also be able to EXECUTE every function the view calls, or the grant is empty. mad's helpers
/// are granted to nobody on purpose (docs/SECURITY.md), so a view that calls one refuses even mad_admin. Tests reading
/// views as the superuser never notice; this reads every mad view as every role that may read it.
/// </summary>
public sealed class ViewFunctionTests(PostgresDatabase database) : DatabaseTests(database)
{
    private static readonly string[] s_roles = ["mad_admin", "mad_user", "mad_sidecar", "mad_device", "mad_reader"];

    [Fact(Timeout = 60_000)]
    public async Task Every_role_that_may_read_a_mad_view_may_call_the_functions_it_calls()
    {
        var views = await Database.DataSource.QueryAsync<string>(
            "SELECT c.relname::text FROM pg_class c WHERE c.relnamespace = 'mad'::regnamespace AND c.relkind = 'v' ORDER BY 1");
        Assert.NotEmpty(views);
        var refused = new List<string>();
        foreach (var role in s_roles)
        {
            foreach (var view in views)
            {
                // The columns this role may read: a column grant narrower than the view is ColumnGrantTests' business.
                var columns = await Database.DataSource.QueryAsync<string>(
                    "SELECT quote_ident(a.attname) FROM pg_attribute a WHERE a.attrelid = ('mad.' || quote_ident(@view))::regclass AND a.attnum > 0 AND NOT a.attisdropped AND has_column_privilege(@role, a.attrelid, a.attnum, 'SELECT') ORDER BY a.attnum",
                    new { view, role });
                if (columns.Count == 0)
                {
                    continue;
                }

                await using var connection = await Database.DataSource.OpenConnectionAsync(Ct);
                await using var transaction = await connection.BeginTransactionAsync(Ct);
                await using (var setRole = new NpgsqlCommand($"SET LOCAL ROLE {role}", connection, transaction))
                {
                    await setRole.ExecuteNonQueryAsync(Ct);
                }

                try
                {
                    await using var read = new NpgsqlCommand($"SELECT {string.Join(", ", columns)} FROM mad.{view} LIMIT 1", connection, transaction);
                    await using var reader = await read.ExecuteReaderAsync(Ct);
                    while (await reader.ReadAsync(Ct))
                    {
                    }
                }
                catch (PostgresException e) when (e.SqlState == PostgresErrorCodes.InsufficientPrivilege && e.MessageText.Contains("function", StringComparison.Ordinal))
                {
                    refused.Add($"{role} reading mad.{view}: {e.MessageText}");
                }
            }
        }

        Assert.True(refused.Count == 0, "Views that call functions their readers may not call:\n" + string.Join('\n', refused));
    }
}

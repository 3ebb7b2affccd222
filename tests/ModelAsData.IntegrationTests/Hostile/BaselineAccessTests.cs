using ModelAsData.IntegrationTests.Batch;
using ModelAsData.IntegrationTests.Monitoring;

namespace ModelAsData.IntegrationTests.Hostile;

/// <summary>
/// Baselines are read with the caller's rights and hold their source's quantiles; drift belongs to a table's owner.
/// Each test is what an attacker would type.
/// </summary>
public sealed class BaselineAccessTests(PostgresDatabase database) : DatabaseTests(database)
{
    [Fact(Timeout = 60_000)]
    public async Task An_admin_cannot_make_a_baseline_from_a_table_it_may_not_read_and_row_security_applies()
    {
        var (model, source, _) = await BoundModelAsync();
        await using var roles = new HostileRoles(Database);
        var (admin, session) = await roles.LoginAsync("admin", "IN ROLE mad_admin");
        await Database.DataSource.ExecuteAsync($"GRANT USAGE ON SCHEMA public TO {admin}");

        var denied = await session.FailsAsync($"SELECT mad.set_baseline('{model}', 1, 'public.{source}')");

        Assert.Equal(PostgresErrorCodes.InsufficientPrivilege, denied.SqlState);
        Assert.Contains($"may not SELECT", denied.MessageText, StringComparison.Ordinal);
        Assert.Equal(0L, await Database.DataSource.ScalarAsync<long>("SELECT count(*) FROM mad.baselines WHERE model = @model", new { model }));

        // Allowed to read, but row security shows it half the rows: the baseline is made of that half.
        await Database.DataSource.ExecuteAsync($"""
            GRANT SELECT ON public.{source} TO {admin};
            ALTER TABLE public.{source} ENABLE ROW LEVEL SECURITY;
            CREATE POLICY half ON public.{source} FOR SELECT TO {admin} USING (id % 2 = 0);
            """);
        await session.ExecuteAsync($"SELECT mad.set_baseline('{model}', 1, 'public.{source}')");
        Assert.Equal(20L, await Database.DataSource.ScalarAsync<long>(
            "SELECT (SELECT sum(c) FROM unnest(counts) c) + null_count FROM mad.baselines WHERE model = @model AND column_name = 'sepal_length'", new { model }));
    }

    [Fact(Timeout = 60_000)]
    public async Task A_mad_user_sees_neither_another_owners_drift_nor_a_baseline_it_may_not_read()
    {
        var (model, source, name) = await BoundModelAsync();
        await Database.DataSource.ExecuteAsync($"SELECT mad.set_baseline('{model}', 1, 'public.{source}')");
        await using var roles = new HostileRoles(Database);
        var (owner, ownerSession) = await roles.LoginAsync("owner", "IN ROLE mad_user");
        var (_, snoop) = await roles.LoginAsync("snoop", "IN ROLE mad_user");
        await Database.DataSource.ExecuteAsync("UPDATE mad.prediction_tables SET owner = @owner WHERE name = @name", new { owner, name });

        var drift = await snoop.FailsAsync($"SELECT * FROM mad.drift('{name}')");
        var histograms = await snoop.FailsAsync($"SELECT * FROM mad.drift_histograms('{name}')");
        var baselines = await snoop.FailsAsync("SELECT edges, categories FROM mad.baselines");
        var counts = await snoop.FailsAsync("SELECT * FROM mad.profile_counts");
        var setBaseline = await snoop.FailsAsync($"SELECT mad.set_baseline('{model}', 1, 'public.{source}')");
        var store = await snoop.FailsAsync($$"""SELECT mad.store_baseline('{{model}}', 1, 'x', 'input', '[{"column": "sepal_length", "type": "category", "categories": [], "counts": [1], "null_count": 0}]')""");

        // The table's own owner planting a first-window reference (021) of its choosing, so drift would never fire.
        var plant = await ownerSession.FailsAsync($$"""SELECT mad.store_first_window('{{name}}', 1, 'input', '[{"column": "sepal_length", "type": "category", "categories": [], "counts": [1], "null_count": 0}]')""");

        Assert.All(new[] { drift, histograms, baselines, counts, setBaseline, store, plant }, e => Assert.Equal(PostgresErrorCodes.InsufficientPrivilege, e.SqlState));
        Assert.Contains("belongs to role", drift.MessageText, StringComparison.Ordinal);

        // The owner sees its drift, but the baseline's bins come from a table it may not read: labels and counts hidden.
        var bins = await ownerSession.QueryAsync<(string Column, string Label, long? Baseline)>($"SELECT \"column\", label, baseline FROM mad.drift_histograms('{name}')");
        Assert.NotEmpty(bins);
        Assert.All(bins, b => Assert.True(b.Baseline is null && (b.Label == "null" || b.Label.StartsWith("bin ", StringComparison.Ordinal)), $"{b.Column}: {b.Label} {b.Baseline}"));
        Assert.NotEmpty(await ownerSession.QueryAsync<string>($"SELECT metric FROM mad.drift('{name}')"));
    }

    /// <summary>A ready iris model bound to a 40-row flowers table (not refreshed).</summary>
    private async Task<(string Model, string Source, string Name)> BoundModelAsync()
    {
        var (model, tables) = await BatchTables.ReadyModelAsync(Database);
        var source = Sql.UniqueName("secret");
        await DriftRows.CreatePostgresAsync(Database.DataSource, source, 40, seed: 4);
        var name = Sql.UniqueName("scores");
        await BatchTables.CreateAsync(tables, name, source, model);
        return (model, source, name);
    }
}

using ModelAsData.IntegrationTests.Outcomes;

namespace ModelAsData.IntegrationTests.Hostile;

/// <summary>
/// Outcomes are read with the caller's rights: a reader of the predictions who may not read the outcome source gets no
/// label through mad.performance, and one who may not read the predictions gets nothing. Typed as an attacker would.
/// </summary>
public sealed class OutcomeAccessTests(PostgresDatabase database) : DatabaseTests(database)
{
    [Fact(Timeout = 60_000)]
    public async Task A_reader_without_rights_on_the_outcome_source_cannot_read_labels_through_performance()
    {
        var (name, _, outcomes, _) = await OutcomeTables.CreateAsync(Database.DataSource);
        await OutcomeTables.ServeAsync(Database.DataSource, name, $"('1', 1, 'champion', '{OutcomeTables.Binary(0.9)}', '2026-11-02 10:00+00')");
        await Database.DataSource.ExecuteAsync($"INSERT INTO public.{outcomes} VALUES (1, '1', '2026-11-02 12:00+00')");
        await using var roles = new HostileRoles(Database);
        var (reader, session) = await roles.LoginAsync("reader", "IN ROLE mad_user");
        var (_, snoop) = await roles.LoginAsync("snoop", "IN ROLE mad_user");
        await Database.DataSource.ExecuteAsync($"GRANT SELECT ON mad_out.{name} TO {reader}; GRANT USAGE ON SCHEMA public TO {reader}");

        var denied = await session.FailsAsync($"SELECT * FROM mad.performance('{name}')");
        var snooped = await snoop.FailsAsync($"SELECT * FROM mad.performance('{name}')");
        var served = await snoop.FailsAsync($"SELECT * FROM mad.served_predictions('{name}')");
        var once = await snoop.FailsAsync($"SELECT mad.served_once('{name}')"); // 056: not even whether a key was served twice
        var exported = await snoop.FailsAsync($"SELECT * FROM mad.export_served('{name}')"); // 055_1: the export's door to the same rows
        var rule = await snoop.FailsAsync($"SELECT mad.require_served_history('{name}')"); // 060: granted to nobody
        var history = await session.FailsAsync($"SELECT * FROM mad_history.{name}");
        var rebind = await session.FailsAsync($"SELECT mad.set_outcomes('{name}', 'mad.outcomes', '{{prediction_table}}', 'source', 'created_at')");

        Assert.Equal(PostgresErrorCodes.InsufficientPrivilege, denied.SqlState);
        Assert.Contains(outcomes, denied.MessageText, StringComparison.Ordinal);
        Assert.All(new[] { snooped, served, once, exported, rule, history, rebind }, e => Assert.Equal(PostgresErrorCodes.InsufficientPrivilege, e.SqlState));
        Assert.Contains($"mad_out.{name}", snooped.MessageText, StringComparison.Ordinal);
        Assert.Contains($"mad_out.{name}", exported.MessageText, StringComparison.Ordinal);

        // Granted the source, the same reader gets the metrics; row security on the source applies to it.
        await Database.DataSource.ExecuteAsync($"""
            GRANT SELECT ON public.{outcomes} TO {reader};
            ALTER TABLE public.{outcomes} ENABLE ROW LEVEL SECURITY;
            CREATE POLICY none_for_reader ON public.{outcomes} FOR SELECT TO {reader} USING (false);
            """);
        var hidden = await session.QueryAsync<long>($"SELECT n_labeled FROM mad.performance('{name}')");
        Assert.All(hidden, n => Assert.Equal(0L, n));
        await Database.DataSource.ExecuteAsync($"DROP POLICY none_for_reader ON public.{outcomes}; CREATE POLICY all_for_reader ON public.{outcomes} FOR SELECT TO {reader} USING (true)");
        var shown = await session.QueryAsync<long>($"SELECT n_labeled FROM mad.performance('{name}')");
        Assert.All(shown, n => Assert.Equal(1L, n));
    }

    [Fact(Timeout = 120_000)]
    public async Task A_reader_without_rights_on_the_outcome_source_cannot_read_labels_through_compare()
    {
        var (model, name, outcomes) = await CompareTests.DeployedAsync(Database);
        await using var roles = new HostileRoles(Database);
        var (reader, session) = await roles.LoginAsync("reader", "IN ROLE mad_user");
        var (_, snoop) = await roles.LoginAsync("snoop", "IN ROLE mad_user");
        await Database.DataSource.ExecuteAsync($"GRANT SELECT ON mad_out.{name} TO {reader}; GRANT USAGE ON SCHEMA public TO {reader}");

        var denied = await session.FailsAsync($"SELECT arm, value, p_value FROM mad.compare('{model}', 'production')");
        var snooped = await snoop.FailsAsync($"SELECT arm, value FROM mad.compare('{model}', 'production', 'log_loss')");
        var metrics = await snoop.FailsAsync($"SELECT * FROM mad.outcome_metrics('{name}', '100000 days')");

        Assert.Equal(PostgresErrorCodes.InsufficientPrivilege, denied.SqlState);
        Assert.Contains(outcomes, denied.MessageText, StringComparison.Ordinal);
        Assert.All(new[] { snooped, metrics }, e => Assert.Equal(PostgresErrorCodes.InsufficientPrivilege, e.SqlState));
        Assert.Contains($"mad_out.{name}", snooped.MessageText, StringComparison.Ordinal);
    }
}

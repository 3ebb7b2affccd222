using System.Globalization;
using ModelAsData.IntegrationTests.Hostile;
using ModelAsData.IntegrationTests.Requests;
using Npgsql;

namespace ModelAsData.IntegrationTests.Outcomes;

/// <summary>
/// Model rot as an alert (042): a served version whose metric on outcomes is worse than the floor its table's owner
/// set shows <c>mad_outcome_below_floor 1</c> on the sidecar's /metrics; one that holds its floor shows 0. Setting a
/// floor is the owner's (or mad_admin's), typed here as an attacker would; bad floors are refused with clear words.
/// </summary>
public sealed class OutcomeFloorTests(PostgresDatabase database) : DatabaseTests(database)
{
    [Fact(Timeout = 180_000)]
    public async Task Metrics_show_a_version_whose_metric_is_worse_than_its_floor()
    {
        var (name, _, outcomes, _) = await OutcomeTables.CreateAsync(Database.DataSource);
        // 200 rows served with p = 0.9 of class 1; 60 turn out 1 and 140 turn out 0: accuracy 0.3, log loss
        // (60 · −ln 0.9 + 140 · −ln 0.1) / 200 = 1.6435, roc_auc 0.5 (one score for all).
        var served = string.Join(", ", Enumerable.Range(1, 200).Select(k => $"('{k}', 1, 'champion', '{OutcomeTables.Binary(0.9)}', now() - interval '1 hour')"));
        await OutcomeTables.ServeAsync(Database.DataSource, name, served);
        await Database.DataSource.ExecuteAsync($"INSERT INTO public.{outcomes} SELECT k, CASE WHEN k <= 60 THEN '1' ELSE '0' END, now() - interval '1 minute' FROM generate_series(1, 200) k");
        await Database.DataSource.ExecuteAsync($"""
            SELECT mad.set_outcome_floor('{name}', 'accuracy', 0.8);
            SELECT mad.set_outcome_floor('{name}', 'log_loss', 0.5);
            SELECT mad.set_outcome_floor('{name}', 'roc_auc', 0.4);
            """);
        // A second table whose outcome source is gone: its floor cannot be judged, and must not hide the first's.
        var (broken, _, brokenOutcomes, _) = await OutcomeTables.CreateAsync(Database.DataSource);
        await Database.DataSource.ExecuteAsync($"SELECT mad.set_outcome_floor('{broken}', 'accuracy', 0.8); DROP TABLE public.{brokenOutcomes}");
        await using var roles = new HostileRoles(Database);
        // A third handed to an owner who may not read its labels: the gauges, which read as mad's owner, must not
        // read them on that owner's behalf, nor with row security on the source, which they could not apply.
        var (denied, _, _, _) = await OutcomeTables.CreateAsync(Database.DataSource);
        var (secured, _, securedOutcomes, _) = await OutcomeTables.CreateAsync(Database.DataSource);
        var stranger = await roles.GroupAsync("stranger", "IN ROLE mad_user");
        await Database.DataSource.ExecuteAsync($"""
            SELECT mad.set_outcome_floor('{denied}', 'accuracy', 0.8);
            SELECT mad.set_outcome_floor('{secured}', 'accuracy', 0.8);
            UPDATE mad.prediction_tables SET owner = '{stranger}' WHERE name = '{denied}';
            ALTER TABLE public.{securedOutcomes} ENABLE ROW LEVEL SECURITY;
            """);
        var token = await HttpDoorSupport.TokenAsync(Database, await roles.GroupAsync("watcher", "IN ROLE mad_user"));
        // As production runs it: a login that holds only mad_sidecar, with no grant on any source or prediction table.
        var login = await roles.LoginAsync("engine", "IN ROLE mad_sidecar");
        await using var sidecar = await HttpDoorSupport.StartAsync(Database, Database.ConnectionStringFor(login.Name, HostileRoles.Password));
        using var http = HttpDoorSupport.Client(sidecar, token);

        string Series(string gauge, string metric) => $"{gauge}{{table=\"{name}\",version=\"1\",arm=\"champion\",metric=\"{metric}\"}} ";
        var metrics = "";
        var deadline = DateTime.UtcNow.AddSeconds(60);
        while (DateTime.UtcNow < deadline && !metrics.Contains(Series("mad_outcome_below_floor", "roc_auc"), StringComparison.Ordinal))
        {
            await Task.Delay(200, Ct);
            metrics = await http.GetStringAsync("/metrics", Ct);
        }

        double Read(string series)
        {
            var line = metrics.Split('\n').FirstOrDefault(l => l.StartsWith(series, StringComparison.Ordinal))
                ?? throw new Xunit.Sdk.XunitException($"/metrics has no {series}:\n{string.Join('\n', metrics.Split('\n').Where(l => l.StartsWith("mad_outcome", StringComparison.Ordinal)))}");
            return double.Parse(line[series.Length..], CultureInfo.InvariantCulture);
        }

        Assert.Equal(1, Read(Series("mad_outcome_below_floor", "accuracy")));
        Assert.Equal(0.3, Read(Series("mad_outcome_value", "accuracy")), 9);
        Assert.Equal(0.8, Read(Series("mad_outcome_floor", "accuracy")), 9);
        Assert.Equal(200, Read(Series("mad_outcome_labeled", "accuracy")));
        Assert.Equal(1, Read(Series("mad_outcome_below_floor", "log_loss"))); // a ceiling: 1.64 is worse than 0.5
        Assert.Equal((60 * -Math.Log(0.9) + 140 * -Math.Log(0.1)) / 200, Read(Series("mad_outcome_value", "log_loss")), 6);
        Assert.Equal(0, Read(Series("mad_outcome_below_floor", "roc_auc")));
        Assert.Contains($"mad_outcome_read_failed{{table=\"{broken}\"}} 1", metrics, StringComparison.Ordinal);
        Assert.DoesNotContain($"mad_outcome_read_failed{{table=\"{name}\"}}", metrics, StringComparison.Ordinal);
        Assert.Contains($"mad_outcome_read_failed{{table=\"{denied}\"}} 1", metrics, StringComparison.Ordinal);
        Assert.Contains($"mad_outcome_read_failed{{table=\"{secured}\"}} 1", metrics, StringComparison.Ordinal);
        var refusals = (await login.DataSource.QueryAsync<string>(
            $"SELECT error FROM mad.outcome_gauges() WHERE prediction_table IN ('{denied}', '{secured}') ORDER BY prediction_table = '{denied}' DESC")).ToList();
        Assert.Contains($"its owner {stranger} may not read the key, label and observed_at columns", refusals[0], StringComparison.Ordinal);
        Assert.Contains("has row security", refusals[1], StringComparison.Ordinal);
    }

    [Fact(Timeout = 60_000)]
    public async Task Only_the_tables_owner_or_mad_admin_sets_a_floor_and_only_sidecars_read_the_gauges()
    {
        var (name, _, _, _) = await OutcomeTables.CreateAsync(Database.DataSource);
        await using var roles = new HostileRoles(Database);
        var (_, intruder) = await roles.LoginAsync("intruder", "IN ROLE mad_user");
        var (_, stranger) = await roles.LoginAsync("stranger");

        // A reader who does not own the table lowers its floor so that no alert fires, or removes it.
        var lowered = await intruder.FailsAsync($"SELECT mad.set_outcome_floor('{name}', 'accuracy', 0.0)");
        var removed = await intruder.FailsAsync($"SELECT mad.set_outcome_floor('{name}', 'accuracy', NULL)");
        var planted = await intruder.FailsAsync($"INSERT INTO mad.outcome_floors (prediction_table, metric, floor) VALUES ('{name}', 'accuracy', 0)");
        // The gauges read every table's outcomes as mad's owner: no one but a sidecar may call them.
        var gauges = await intruder.FailsAsync("SELECT * FROM mad.outcome_gauges()");
        var outsider = await stranger.FailsAsync("SELECT * FROM mad.outcome_gauges()");

        Assert.All(new[] { lowered, removed, planted, gauges, outsider }, e => Assert.Equal(PostgresErrorCodes.InsufficientPrivilege, e.SqlState));
        Assert.Contains($"'{name}' belongs to role", lowered.MessageText, StringComparison.Ordinal);
    }

    [Fact(Timeout = 60_000)]
    public async Task A_floor_that_cannot_be_judged_is_refused_with_what_to_do()
    {
        var (name, source, _, model) = await OutcomeTables.CreateAsync(Database.DataSource);
        var unbound = Sql.UniqueName("unbound");
        await Database.DataSource.ExecuteAsync($"SELECT mad.create_prediction_table('{unbound}', 'public.{source}', '{{id}}', '{model}', '{Batch.BatchTables.IrisFeatures}')");

        var noMetric = await Database.DataSource.FailsAsync($"SELECT mad.set_outcome_floor('{name}', 'mean_error', 0.1)");
        var notANumber = await Database.DataSource.FailsAsync($"SELECT mad.set_outcome_floor('{name}', 'accuracy', 'NaN')");
        var badWindow = await Database.DataSource.FailsAsync($"SELECT mad.set_outcome_floor('{name}', 'accuracy', 0.8, \"window\" => '1 month')");
        var noOutcomes = await Database.DataSource.FailsAsync($"SELECT mad.set_outcome_floor('{unbound}', 'accuracy', 0.8)");
        var noTable = await Database.DataSource.FailsAsync("SELECT mad.set_outcome_floor('no_such_scores', 'accuracy', 0.8)");

        Assert.Equal(PostgresErrorCodes.InvalidParameterValue, noMetric.SqlState);
        Assert.Contains("mean_error has no better direction", noMetric.Hint, StringComparison.Ordinal);
        Assert.Equal(PostgresErrorCodes.InvalidParameterValue, notANumber.SqlState);
        Assert.Equal(PostgresErrorCodes.InvalidParameterValue, badWindow.SqlState);
        Assert.Equal(PostgresErrorCodes.ObjectNotInPrerequisiteState, noOutcomes.SqlState);
        Assert.Contains("mad.set_outcomes", noOutcomes.Hint, StringComparison.Ordinal);
        Assert.Equal(PostgresErrorCodes.NoDataFound, noTable.SqlState);
        Assert.Empty(await Database.DataSource.QueryAsync<string>($"SELECT metric FROM mad.outcome_floors WHERE prediction_table IN ('{name}', '{unbound}')"));
    }
}

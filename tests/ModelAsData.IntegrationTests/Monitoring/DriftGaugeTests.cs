using System.Globalization;
using ModelAsData.IntegrationTests.Batch;
using ModelAsData.IntegrationTests.Hostile;
using ModelAsData.IntegrationTests.Requests;

namespace ModelAsData.IntegrationTests.Monitoring;

/// <summary>
/// The sidecar's /metrics carries drift gauges per table, version, column, kind and metric (026_3), read over HTTP:
/// a table scored from shifted rows shows sepal_length drifted, one scored from its baseline's rows does not.
/// </summary>
public sealed class DriftGaugeTests(PostgresDatabase database) : DatabaseTests(database)
{
    [Fact(Timeout = 180_000)]
    public async Task Metrics_show_each_tables_drift_per_column_and_metric()
    {
        var (model, tables) = await BatchTables.ReadyModelAsync(Database);
        var (training, shiftedSource, shifted, same) = (Sql.UniqueName("training"), Sql.UniqueName("shifted"), Sql.UniqueName("drifting"), Sql.UniqueName("steady"));
        await DriftRows.CreatePostgresAsync(Database.DataSource, training, 1_000, seed: 41);
        await DriftRows.CreatePostgresAsync(Database.DataSource, shiftedSource, 1_000, seed: 41, shift: 1.5);
        await BatchTables.CreateAsync(tables, shifted, shiftedSource, model);
        await BatchTables.CreateAsync(tables, same, training, model);
        await Database.DataSource.ExecuteAsync($"SELECT mad.set_baseline(@model, 1, 'public.{training}')", new { model });
        await using var roles = new HostileRoles(Database);
        var token = await HttpDoorSupport.TokenAsync(Database, await roles.GroupAsync("scorer", "IN ROLE mad_user"));
        await using var sidecar = await HttpDoorSupport.StartAsync(Database, o => o with { HeartbeatInterval = TimeSpan.FromMilliseconds(200) });
        using var http = HttpDoorSupport.Client(sidecar, token);

        await tables.RefreshAsync(shifted, cancellationToken: Ct);
        await tables.RefreshAsync(same, cancellationToken: Ct);

        string Series(string gauge, string table, string column, string metric) =>
            $"{gauge}{{table=\"{table}\",version=\"1\",column=\"{column}\",kind=\"input\",metric=\"{metric}\"}} ";
        var metrics = "";
        var deadline = DateTime.UtcNow.AddSeconds(30);
        while (DateTime.UtcNow < deadline)
        {
            metrics = await http.GetStringAsync("/metrics", Ct);
            if (metrics.Contains(Series("mad_drift_value", shifted, "sepal_length", "psi"), StringComparison.Ordinal)
                && metrics.Contains(Series("mad_drift_value", same, "sepal_length", "psi"), StringComparison.Ordinal))
            {
                break;
            }

            await Task.Delay(200, Ct);
        }

        double Read(string series)
        {
            var line = metrics.Split('\n').FirstOrDefault(l => l.StartsWith(series, StringComparison.Ordinal))
                ?? throw new Xunit.Sdk.XunitException($"/metrics has no {series}:\n{string.Join('\n', metrics.Split('\n').Where(l => l.StartsWith("mad_drift", StringComparison.Ordinal)).Take(20))}");
            return double.Parse(line[series.Length..], CultureInfo.InvariantCulture);
        }

        Assert.Equal(1, Read(Series("mad_drift_drifted", shifted, "sepal_length", "psi")));
        Assert.True(Read(Series("mad_drift_value", shifted, "sepal_length", "psi")) > Read(Series("mad_drift_threshold", shifted, "sepal_length", "psi")));
        Assert.Equal(0, Read(Series("mad_drift_drifted", shifted, "petal_width", "psi")));
        foreach (var metric in new[] { "psi", "js", "wasserstein", "ks", "ks_p", "chi2_p" })
        {
            Assert.Equal(0, Read(Series("mad_drift_drifted", same, "sepal_length", metric)));
            if (metric is not ("ks_p" or "chi2_p"))
            {
                Assert.Equal(0, Read(Series("mad_drift_value", same, "sepal_length", metric)), 9); // the baseline's own rows
            }
        }

        Assert.Contains($"mad_drift_rows{{table=\"{shifted}\",version=\"1\",column=\"sepal_length\",kind=\"input\"}} 1000", metrics, StringComparison.Ordinal);
    }
}

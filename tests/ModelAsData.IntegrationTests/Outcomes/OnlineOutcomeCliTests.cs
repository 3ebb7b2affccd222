using ModelAsData.IntegrationTests.Requests;

namespace ModelAsData.IntegrationTests.Outcomes;

/// <summary>
/// <c>mad outcomes set</c>, <c>mad monitor performance|compare</c> and <c>mad export training-set</c> on a model's
/// online traffic (<c>online:&lt;model&gt;</c>, 051), through the real parser, with requests answered by a real sidecar.
/// </summary>
public sealed class OnlineOutcomeCliTests(PostgresDatabase database) : MadCliTests(database)
{
    [Fact(Timeout = 180_000)]
    public async Task The_cli_binds_reports_compares_and_exports_a_models_online_traffic()
    {
        var model = await RequestSupport.PushIrisAsync(Database);
        var events = Sql.UniqueName("events");
        await Database.DataSource.ExecuteAsync($"SELECT mad.deploy('{model}', 'production', 1); CREATE TABLE public.{events} (id bigint, label text, observed_at timestamptz)");
        var online = $"online:{model}";
        var bound = await RunAsync("outcomes", "set", online, "--source", $"public.{events}", "--key", "id", "--label", "label", "--observed-at", "observed_at");
        Assert.True(bound.ExitCode == 0, bound.Output);

        await using (var sidecar = await RequestSupport.StartSidecarAsync(Database))
        {
            for (var k = 1; k <= 10; k++)
            {
                await Database.DataSource.ExecuteAsync("CALL mad.predict(@model, @features::jsonb, NULL, key => @key)",
                    new { model, features = RequestSupport.Virginica, key = k.ToString(System.Globalization.CultureInfo.InvariantCulture) });
            }

            await Eventually.WaitForAsync(
                () => Database.DataSource.ScalarAsync<long>("SELECT count(*) FROM mad.prediction_log WHERE model = @model AND features IS NOT NULL", new { model }),
                n => n == 10, "the keyed rows in the log");
        }

        // Virginica is class 2: eight labels agree, two do not.
        await Database.DataSource.ExecuteAsync($"INSERT INTO public.{events} SELECT g, CASE WHEN g <= 8 THEN '2' ELSE '0' END, clock_timestamp() FROM generate_series(1, 10) g");

        var performance = await RunAsync("monitor", "performance", online);
        Assert.True(performance.ExitCode == 0, performance.Output);
        Assert.Matches(@"│\s*1\s*│\s*champion\s*│\s*10\s*│\s*100%\s*│\s*0\.8\s*│", performance.Output);  // version, arm, n_labeled, coverage, accuracy

        var compare = await RunAsync("monitor", "compare", model, "production");
        Assert.True(compare.ExitCode == 0, compare.Output);
        Assert.Contains(online, compare.Output, StringComparison.Ordinal);

        var out_ = Path.Combine(Path.GetTempPath(), $"mad-online-{Guid.NewGuid():N}.csv");
        try
        {
            var export = await RunAsync("export", "training-set", online, "--out", out_, "--seed", "1");
            Assert.True(export.ExitCode == 0, export.Output);
            var lines = await File.ReadAllLinesAsync(out_, Ct);
            Assert.StartsWith("key,features,label,observed_at,served_version", lines[0], StringComparison.Ordinal);
            Assert.Equal(10, lines.Length - 1);
        }
        finally
        {
            File.Delete(out_);
            File.Delete(Path.ChangeExtension(out_, ".manifest.json"));
        }
    }
}

using ModelAsData.Core;
using ModelAsData.IntegrationTests.Outcomes;

namespace ModelAsData.IntegrationTests.Hostile;

/// <summary>
/// `mad monitor performance|compare` as logins that may not read what a report needs, typed as they would type it: a
/// reader of the predictions without the outcome source, a login without the predictions, and a table name that is an
/// injection. Each gets PostgreSQL's refusal as a message, no number and no report file.
/// </summary>
public sealed class OutcomeCliAccessTests(PostgresDatabase database) : MadCliTests(database)
{
    [Fact(Timeout = 120_000)]
    public async Task Logins_without_the_labels_or_the_predictions_get_a_refusal_and_no_report()
    {
        var (model, name, outcomes) = await CompareTests.DeployedAsync(Database);
        await using var roles = new HostileRoles(Database);
        var (reader, _) = await roles.LoginAsync("reader", "IN ROLE mad_user");
        var (snoop, _) = await roles.LoginAsync("snoop", "IN ROLE mad_user");
        await Database.DataSource.ExecuteAsync($"GRANT SELECT ON mad_out.{name} TO {reader}; GRANT USAGE ON SCHEMA public TO {reader}");
        var html = Path.Combine(Path.GetTempPath(), $"{name}.denied.html");
        var (asReader, asSnoop) = (Database.ConnectionStringFor(reader, HostileRoles.Password), Database.ConnectionStringFor(snoop, HostileRoles.Password));

        var denied = await RunWithDbAsync(asReader, "monitor", "performance", name, "--html", html);
        var deniedCompare = await RunWithDbAsync(asReader, "monitor", "compare", model, "production", "--html", html);
        var snooped = await RunWithDbAsync(asSnoop, "monitor", "performance", name);
        var snoopedCompare = await RunWithDbAsync(asSnoop, "monitor", "compare", model, "production", "--metric", "log_loss");
        var injected = await RunWithDbAsync(asReader, "monitor", "performance", $"{name}'); DROP TABLE public.{outcomes}; --");
        var injectedModel = await RunWithDbAsync(asReader, "monitor", "compare", $"{model}' OR '1'='1", "production");

        foreach (var (exitCode, output) in new[] { denied, deniedCompare })
        {
            Assert.Equal((int)ErrorCode.PermissionDenied, exitCode);
            Assert.Contains("permission denied", output, StringComparison.Ordinal);
            Assert.Contains(outcomes, output, StringComparison.Ordinal);
            Assert.DoesNotContain("accuracy", output, StringComparison.Ordinal);
        }

        foreach (var (exitCode, output) in new[] { snooped, snoopedCompare })
        {
            Assert.Equal((int)ErrorCode.PermissionDenied, exitCode);
            Assert.Contains($"may not SELECT from mad_out.{name}", output, StringComparison.Ordinal);
            Assert.Contains($"GRANT SELECT ON mad_out.{name} TO {snoop}", output, StringComparison.Ordinal);
        }

        Assert.NotEqual(0, injected.ExitCode);
        Assert.NotEqual(0, injectedModel.ExitCode);
        Assert.Contains("has no alias 'production'", injectedModel.Output, StringComparison.Ordinal);
        Assert.False(File.Exists(html));
        Assert.Equal(400L, await Database.DataSource.ScalarAsync<long>($"SELECT count(*) FROM public.{outcomes}")); // nothing dropped
    }
}

using ModelAsData.Sqlite;
using ModelAsData.Tests.Sqlite;

namespace ModelAsData.Tests.Cli;

/// <summary>
/// What the embedded store does not do (streaming, jobs) it says through the same interfaces: exit 20
/// (<c>NotSupported</c>) with a message naming the PostgreSQL store and what to use on SQLite instead.
/// </summary>
[Collection(CliCollection.Name)]
public sealed class SqliteRefusalTests() : SqliteFileCliTests("refusals.db")
{
    private const int NotSupported = 20;

    [Theory]
    [InlineData("watch")]
    [InlineData("unwatch")]
    public async Task Streaming_verbs_say_they_need_postgres_and_to_refresh_instead(string verb)
    {
        var result = await MadRunner.RunAsync("tables", verb, "--db", Db, "flower_scores");
        Assert.True(result.ExitCode == NotSupported, result.ToString());
        Assert.Contains($"{verb} needs the PostgreSQL store", result.Output);
        Assert.Contains("refreshed with mad tables refresh flower_scores", result.Output);
    }

    [Theory]
    [InlineData("jobs")]
    [InlineData("jobs follow 1")]
    [InlineData("jobs watch 1")]
    public async Task Job_verbs_say_they_need_postgres_and_that_refresh_runs_in_process(string verb)
    {
        var result = await MadRunner.RunAsync([.. verb.Split(' '), "--db", Db]);
        Assert.True(result.ExitCode == NotSupported, result.ToString());
        Assert.Contains("Jobs need the PostgreSQL store", result.Output);
        Assert.Contains("refreshed in-process, and at once, with mad tables refresh NAME", result.Output);
    }

    [Fact]
    public async Task Refresh_and_status_leave_jobs_and_streaming_out()
    {
        var push = await MadRunner.RunAsync("models", "push", "--db", Db, "iris", TestModels.External("skl2onnx_rf_iris.onnx"));
        Assert.True(push.ExitCode == 0, push.ToString());
        await using (var connection = await SqliteDatabase.OpenAsync(Db))
        {
            TempDatabase.Execute(connection, "CREATE TABLE flowers (id INTEGER PRIMARY KEY, float_input_0 REAL)");
        }

        var create = await MadRunner.RunAsync("tables", "create", "--db", Db, "flower_scores", "--model", "iris", "--source", "flowers", "--key", "id",
            "--features", """{"float_input": ["float_input_0", "float_input_0", "float_input_0", "float_input_0"]}""");
        Assert.True(create.ExitCode == 0, create.ToString());

        var refresh = await MadRunner.RunAsync("tables", "refresh", "--db", Db, "flower_scores", "--wait");
        Assert.True(refresh.ExitCode == 0, refresh.ToString());
        Assert.Contains("Scored 0 rows of flower_scores", refresh.Output);
        Assert.DoesNotContain("job", refresh.Output, StringComparison.OrdinalIgnoreCase);

        var status = await MadRunner.RunAsync("tables", "status", "--db", Db, "flower_scores");
        Assert.True(status.ExitCode == 0, status.ToString());
        Assert.Contains("columns:  label", status.Output);
        Assert.DoesNotContain("streaming", status.Output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Jobs_help_shows_follow_and_its_watch_twin()
    {
        var help = await MadRunner.RunAsync("jobs", "--help");
        Assert.Equal(0, help.ExitCode);
        Assert.Contains("follow <id>", help.Output);
        Assert.Contains("watch <id>", help.Output);
        Assert.Contains("The same as follow", help.Output);

        var follow = await MadRunner.RunAsync("jobs", "follow", "--help");
        Assert.Equal(0, follow.ExitCode);
        Assert.Contains("Follow a job with a progress bar", follow.Output);
    }
}

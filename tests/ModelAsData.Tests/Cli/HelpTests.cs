namespace ModelAsData.Tests.Cli;

[Collection(CliCollection.Name)]
public sealed class HelpTests
{
    public static TheoryData<string> Verbs =>
    [
        "", "demo", "db", "db migrate", "models", "models push", "models list", "models show", "models alias", "models rollback",
        "models history", "predict", "sql", "tables", "tables create", "tables refresh", "tables list", "tables status", "bench",
    ];

    [Theory]
    [MemberData(nameof(Verbs))]
    public async Task Help_on_every_verb_prints_its_usage_and_exits_0(string verb)
    {
        var args = verb.Split(' ', StringSplitOptions.RemoveEmptyEntries).Append("--help").ToArray();
        var result = await MadRunner.RunAsync(args);
        Assert.True(result.ExitCode == 0, result.ToString());
        Assert.Contains("Usage:", result.Output);
        // The root command is named after the process (mad in production, the test host here): check the verb path.
        var usage = result.Output[result.Output.IndexOf("Usage:", StringComparison.Ordinal)..].Split('\n')[1];
        Assert.Contains(verb, usage);
        if (verb.Length == 0)
        {
            Assert.Contains("Commands:", result.Output);
            Assert.Contains("demo", result.Output);
        }
        Assert.Contains("--db", result.Output);
        Assert.DoesNotContain("error:", result.Output);
    }

    [Fact]
    public async Task Help_describes_the_options_of_a_verb()
    {
        var result = await MadRunner.RunAsync("tables", "create", "--help");
        Assert.Equal(0, result.ExitCode);
        foreach (var option in new[] { "--model", "--source", "--key", "--features" })
        {
            Assert.Contains(option, result.Output);
        }

        Assert.Contains("JSON mapping each model input to a column", result.Output);
    }

    [Fact]
    public async Task Unknown_verb_is_a_parse_error_with_help()
    {
        var result = await MadRunner.RunAsync("modles", "list");
        Assert.NotEqual(0, result.ExitCode);
        Assert.Contains("modles", result.Output);
    }
}

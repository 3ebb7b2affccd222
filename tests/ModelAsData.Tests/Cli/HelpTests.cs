using System.CommandLine;
using System.Text.RegularExpressions;
using ModelAsData.Cli;
using Spectre.Console.Testing;

namespace ModelAsData.Tests.Cli;

[Collection(CliCollection.Name)]
public sealed partial class HelpTests
{
    /// <summary>
    /// Every verb and sub-verb, found by walking the real command tree from its root (so a verb added or renamed is
    /// covered without editing this list): "" for the root, then paths such as "tables create".
    /// </summary>
    public static TheoryData<string> Verbs => [.. Walk(Tree(), "")];

    [Fact]
    public void The_walk_reaches_every_level_of_the_tree()
    {
        var verbs = Walk(Tree(), "").ToList();

        // The verbs the old hard-coded list left out are reached now, and so is each sub-verb of a verb that has them.
        Assert.Contains("serve", verbs);
        Assert.Contains("jobs", verbs);
        Assert.Contains("tables watch", verbs);
        Assert.Contains("tables unwatch", verbs);
        Assert.Contains(verbs, v => v.StartsWith("jobs ", StringComparison.Ordinal));
        Assert.Equal(verbs.Count, verbs.Distinct().Count());
    }

    [Theory]
    [MemberData(nameof(Verbs))]
    public async Task Help_on_every_verb_prints_its_usage_its_description_and_its_options(string verb)
    {
        var command = Find(Tree(), verb);
        var args = verb.Split(' ', StringSplitOptions.RemoveEmptyEntries).Append("--help").ToArray();

        var result = await MadRunner.RunAsync(args);

        Assert.True(result.ExitCode == 0, result.ToString());
        Assert.DoesNotContain("error:", result.Output);
        var output = Flatten(result.Output);
        Assert.False(string.IsNullOrWhiteSpace(command.Description), $"'{verb}' has no description");
        Assert.Contains("Description: " + Flatten(command.Description!), output);
        Assert.Contains("Usage:", result.Output);
        // The root command is named after the process (mad in production, the test host here): check the verb path.
        var usage = result.Output[result.Output.IndexOf("Usage:", StringComparison.Ordinal)..].Split('\n')[1];
        Assert.Contains(verb, usage);
        foreach (var argument in command.Arguments.Where(a => !a.Hidden))
        {
            Assert.False(string.IsNullOrWhiteSpace(argument.Description), $"'{verb}' argument <{argument.Name}> has no description");
            Assert.Contains($"<{argument.Name}>", usage);
            Assert.Contains(Flatten(argument.Description!), output);
        }

        foreach (var option in Options(command))
        {
            Assert.False(string.IsNullOrWhiteSpace(option.Description), $"'{verb}' option {option.Name} has no description");
            Assert.Contains(option.Name, output);
            Assert.Contains(Flatten(option.Description!), output);
        }

        foreach (var sub in command.Subcommands.Where(c => !c.Hidden))
        {
            Assert.Contains("Commands:", result.Output);
            Assert.Contains($" {sub.Name} ", output);
        }

        Assert.Contains("--db", result.Output);
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

    private static RootCommand Tree() => MadCommand.Create(new TestConsole());

    private static IEnumerable<string> Walk(Command command, string path)
    {
        yield return path;
        foreach (var sub in command.Subcommands.Where(c => !c.Hidden))
        {
            foreach (var verb in Walk(sub, path.Length == 0 ? sub.Name : $"{path} {sub.Name}"))
            {
                yield return verb;
            }
        }
    }

    private static Command Find(Command root, string verb) =>
        verb.Split(' ', StringSplitOptions.RemoveEmptyEntries).Aggregate(root, (command, name) => command.Subcommands.Single(c => c.Name == name));

    /// <summary>The options help lists for a verb: its own and the recursive ones of its ancestors (--db, --verbose).</summary>
    private static IEnumerable<Option> Options(Command command)
    {
        var inherited = command.Parents.OfType<Command>().SelectMany(p => Options(p)).Where(o => o.Recursive);
        return command.Options.Where(o => !o.Hidden).Concat(inherited).DistinctBy(o => o.Name);
    }

    /// <summary>Help wraps long text to the terminal's width: compare with every run of white space as one space.</summary>
    private static string Flatten(string text) => Whitespace().Replace(text, " ").Trim();

    [GeneratedRegex(@"\s+")]
    private static partial Regex Whitespace();
}

using System.CommandLine;
using ModelAsData.Cli;
using Spectre.Console.Testing;

namespace ModelAsData.Tests.Cli;

/// <summary>What a user sees after one `mad` command: its exit code and everything it printed.</summary>
internal sealed record MadResult(int ExitCode, string Output)
{
    public override string ToString() => $"exit {ExitCode}:\n{Output}";
}

/// <summary>Runs the real `mad` parser and verbs against a test console, as Program.cs does against the terminal.</summary>
internal static class MadRunner
{
    public static async Task<MadResult> RunAsync(params string[] args)
    {
        using var console = new TestConsole();
        console.Profile.Width = 240;
        using var output = new StringWriter();
        using var error = new StringWriter();
        var exitCode = await MadCommand.Create(console).Parse(args).InvokeAsync(new InvocationConfiguration { Output = output, Error = error });
        return new MadResult(exitCode, console.Output + output + error);
    }
}

/// <summary>CLI tests run one at a time: the command tree shares its global options between instances.</summary>
[CollectionDefinition(Name)]
public sealed class CliCollection
{
    public const string Name = "cli";
}

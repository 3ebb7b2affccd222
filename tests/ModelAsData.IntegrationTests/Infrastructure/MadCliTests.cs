using System.CommandLine;
using ModelAsData.Cli;
using Spectre.Console.Testing;

namespace ModelAsData.IntegrationTests.Infrastructure;

/// <summary>A <see cref="DatabaseTests"/> class whose tests run <c>mad</c> verbs through the real parser.</summary>
public abstract class MadCliTests(PostgresDatabase database) : DatabaseTests(database)
{
    /// <summary>Runs <c>mad</c> with <paramref name="args"/> against this class's database.</summary>
    protected Task<(int ExitCode, string Output)> RunAsync(params string[] args) => RunWithDbAsync(Database.ConnectionString, args);

    /// <summary>Runs <c>mad</c> with <paramref name="args"/> and <c>--db <paramref name="db"/></c>; the output is what the console and the writers got, wide enough not to wrap.</summary>
    protected static async Task<(int ExitCode, string Output)> RunWithDbAsync(string db, params string[] args)
    {
        using var console = new TestConsole();
        console.Profile.Width = 240;
        using var output = new StringWriter();
        var exitCode = await MadCommand.Create(console).Parse([.. args, "--db", db]).InvokeAsync(new InvocationConfiguration { Output = output, Error = output }, Ct);
        return (exitCode, console.Output + output);
    }
}

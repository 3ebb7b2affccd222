using System.CommandLine;
using ModelAsData.Cli.Commands;
using Spectre.Console;

namespace ModelAsData.Cli;

/// <summary>The <c>mad</c> command tree. Every verb writes to the console it is given, so tests can read what users see.</summary>
public static class MadCommand
{
    /// <summary>The command tree writing to <paramref name="console"/>; the SQL prompt reads <paramref name="input"/> (default: standard input).</summary>
    public static RootCommand Create(IAnsiConsole console, TextReader? input = null)
    {
        var root = new RootCommand("ModelAsData: ONNX models stored as data in your database, scored from SQL.");
        var cli = new CliContext(console, input ?? Console.In);
        root.Options.Add(cli.Db);
        root.Options.Add(cli.Verbose);
        root.Subcommands.Add(DemoCommand.Create(cli));
        root.Subcommands.Add(DbCommand.Create(cli));
        root.Subcommands.Add(ModelsCommand.Create(cli));
        root.Subcommands.Add(PredictCommand.Create(cli));
        root.Subcommands.Add(SqlCommand.Create(cli));
        root.Subcommands.Add(TablesCommand.Create(cli));
        root.Subcommands.Add(JobsCommand.Create(cli));
        root.Subcommands.Add(MonitorCommand.Create(cli));
        root.Subcommands.Add(ServeCommand.Create(cli));
        root.Subcommands.Add(TokensCommand.Create(cli));
        root.Subcommands.Add(DeployCommand.Create(cli));
        root.Subcommands.Add(SyncCommand.Create(cli));
        root.Subcommands.Add(OutcomesCommand.Create(cli));
        root.Subcommands.Add(ExportCommand.Create(cli));
        root.Subcommands.Add(BenchCommand.Create(cli));
        return root;
    }
}

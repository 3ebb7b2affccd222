using System.CommandLine;
using ModelAsData.Cli.Commands;
using Spectre.Console;

namespace ModelAsData.Cli;

/// <summary>The <c>mad</c> command tree. Every verb writes to the console it is given, so tests can read what users see.</summary>
public static class MadCommand
{
    /// <summary>Where the registry lives: a SQLite file path or a PostgreSQL connection string.</summary>
    public static readonly Option<string?> Db = new("--db")
    {
        Description = "A SQLite file path or a PostgreSQL connection string (Host=...;Database=...). Default: $MAD_DB.",
        Recursive = true,
        DefaultValueFactory = _ => Environment.GetEnvironmentVariable("MAD_DB"),
    };

    public static readonly Option<bool> Verbose = new("--verbose")
    {
        Description = "Show the full exception behind an error.",
        Recursive = true,
    };

    public static RootCommand Create(IAnsiConsole console)
    {
        var root = new RootCommand("ModelAsData: ONNX models stored as data in your database, scored from SQL.");
        root.Options.Add(Db);
        root.Options.Add(Verbose);
        var cli = new CliContext(console);
        root.Subcommands.Add(DemoCommand.Create(cli));
        root.Subcommands.Add(DbCommand.Create(cli));
        root.Subcommands.Add(ModelsCommand.Create(cli));
        root.Subcommands.Add(PredictCommand.Create(cli));
        root.Subcommands.Add(SqlCommand.Create(cli));
        root.Subcommands.Add(TablesCommand.Create(cli));
        root.Subcommands.Add(BenchCommand.Create(cli));
        return root;
    }
}

using System.CommandLine;
using ModelAsData.Core;
using Spectre.Console;

namespace ModelAsData.Cli;

/// <summary>What every verb shares: the console, and one way to run an action that turns domain errors into a message and an exit code.</summary>
public sealed class CliContext(IAnsiConsole console)
{
    public IAnsiConsole Console { get; } = console;

    /// <summary>Runs a verb: a <see cref="ModelAsDataException"/> prints its message (with the stack under --verbose) and exits with its code.</summary>
    public void SetAction(Command command, Func<ParseResult, CancellationToken, Task<int>> action) =>
        command.SetAction(async (parseResult, cancellationToken) =>
        {
            try
            {
                return await action(parseResult, cancellationToken);
            }
            catch (ModelAsDataException e)
            {
                return Fail(parseResult, e, (int)e.Code);
            }
            catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
            {
                Console.MarkupLine("[yellow]Cancelled.[/]");
                return 130;
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException or Microsoft.Data.Sqlite.SqliteException or Npgsql.NpgsqlException)
            {
                return Fail(parseResult, e, 1);
            }
        });

    /// <summary>The --db value, or a message that says how to give one.</summary>
    public static string RequireDb(ParseResult parseResult) =>
        parseResult.GetValue(MadCommand.Db) is { Length: > 0 } db
            ? db
            : throw new ModelAsDataException(ErrorCode.InvalidArgument,
                "No database given: pass --db demo.db (a SQLite file) or --db \"Host=localhost;Database=app;Username=me\" (PostgreSQL), or set MAD_DB. Try `mad demo` first.");

    private int Fail(ParseResult parseResult, Exception e, int exitCode)
    {
        Console.MarkupLineInterpolated($"[red]error:[/] {e.Message}");
        if (parseResult.GetValue(MadCommand.Verbose))
        {
            Console.WriteException(e);
        }

        return exitCode;
    }
}

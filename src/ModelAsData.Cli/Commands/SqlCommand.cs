using System.CommandLine;
using System.Data.Common;
using ModelAsData.Core;
using ModelAsData.Core.Onnx;
using Spectre.Console;

namespace ModelAsData.Cli.Commands;

/// <summary><c>mad sql ["SELECT ..."]</c>: SQL on the database with predict() registered; a prompt when no statement is given.</summary>
internal static class SqlCommand
{
    public static Command Create(CliContext cli)
    {
        var statement = new Argument<string?>("statement") { Description = "The SQL to run; without it, a prompt reads statements until an empty line or EOF.", Arity = ArgumentArity.ZeroOrOne };
        var maxRows = new Option<int>("--max-rows") { Description = "Print at most this many rows.", DefaultValueFactory = _ => 200 };
        var command = new Command("sql", "Run SQL on the database, with predict(), predict_proba() and predict_version() on SQLite.") { statement, maxRows };
        cli.SetAction(command, async (parse, ct) =>
        {
            await using var store = await MadStore.OpenAsync(cli.RequireDb(parse), ct);
            // Only SQLite: on PostgreSQL the user's own console (psql) runs their SQL with their own search_path, which
            // mad does not pin (the pin is for mad's own statements, see PostgresConnectionString.PinSearchPath).
            var connection = store.Sqlite
                ?? throw new ModelAsDataException(ErrorCode.InvalidArgument, "mad sql runs on the embedded SQLite store; on PostgreSQL use psql, where mad.* functions are in the database itself.");
            if (parse.GetValue(statement) is { Length: > 0 } sql)
            {
                await RunAsync(cli.Console, connection, sql, parse.GetValue(maxRows), ct);
                return 0;
            }

            cli.Console.MarkupLine("[grey]Enter SQL; end a statement with ';'. An empty line or Ctrl-D quits.[/]");
            var buffer = new System.Text.StringBuilder();
            while (true)
            {
                cli.Console.Markup(buffer.Length == 0 ? "mad> " : "  -> ");
                var line = cli.Input.ReadLine();
                if (line is null || (line.Length == 0 && buffer.Length == 0))
                {
                    return 0;
                }

                buffer.AppendLine(line);
                if (!line.TrimEnd().EndsWith(';'))
                {
                    continue;
                }

                try
                {
                    await RunAsync(cli.Console, connection, buffer.ToString(), parse.GetValue(maxRows), ct);
                }
                catch (Exception e) when (e is DbException or ModelAsDataException)
                {
                    cli.Console.MarkupLineInterpolated($"[red]error:[/] {e.Message}");
                }

                buffer.Clear();
            }
        });
        return command;
    }

    /// <summary>Runs one statement and prints its rows as a table (or how many rows it changed).</summary>
    internal static async Task RunAsync(IAnsiConsole console, DbConnection connection, string sql, int maxRows, CancellationToken cancellationToken)
    {
        await using var command = connection.CreateCommand();
        command.CommandText = sql;
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        if (reader.FieldCount == 0)
        {
            console.MarkupLineInterpolated($"{reader.RecordsAffected} row(s) changed.");
            return;
        }

        var table = new Table();
        for (var i = 0; i < reader.FieldCount; i++)
        {
            table.AddColumn(Markup.Escape(reader.GetName(i)));
        }

        var rows = 0;
        while (await reader.ReadAsync(cancellationToken))
        {
            if (rows++ < maxRows)
            {
                table.AddRow(Enumerable.Range(0, reader.FieldCount).Select(i => Markup.Escape(reader.IsDBNull(i) ? "NULL" : ScoredBatch.Format(reader.GetValue(i)))).ToArray());
            }
        }

        console.Write(table);
        console.MarkupLineInterpolated($"[grey]{rows} row(s){(rows > maxRows ? $", first {maxRows} shown" : "")}[/]");
    }
}

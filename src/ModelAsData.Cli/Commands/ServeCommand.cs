using System.CommandLine;
using ModelAsData.Core;
using ModelAsData.Sidecar;
using Spectre.Console;

namespace ModelAsData.Cli.Commands;

/// <summary><c>mad serve</c>: the sidecar, until Ctrl-C.</summary>
internal static class ServeCommand
{
    public static Command Create(CliContext cli)
    {
        var id = new Option<string?>("--id") { Description = "This sidecar's name in mad.sidecars (default: host name and process id)." };
        var command = new Command("serve", "Run the sidecar beside PostgreSQL: validate pushed versions (and, as they arrive, score work) until Ctrl-C.") { id };
        cli.SetAction(command, async (parse, ct) =>
        {
            var db = cli.RequireDb(parse);
            if (!MadStore.IsPostgres(db))
            {
                throw new ModelAsDataException(ErrorCode.InvalidArgument,
                    "mad serve runs beside PostgreSQL: pass --db \"Host=...;Database=...\". The embedded SQLite store needs no sidecar: it scores in-process.");
            }

            var options = parse.GetValue(id) is { Length: > 0 } name ? new SidecarOptions { SidecarId = name } : new SidecarOptions();
            options.Validate();
            cli.Console.MarkupLineInterpolated($"Sidecar {options.SidecarId} starting; Ctrl-C stops it.");
            await SidecarHost.RunAsync(db, options, ct);
            return 0;
        });
        return command;
    }
}

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
        var http = new Option<string?>("--http")
        {
            Description = "Also serve HTTP (Open Inference Protocol v2, /v2/health/*, /metrics) at host:port, e.g. 127.0.0.1:8080; a port alone binds to loopback.",
        };
        var command = new Command("serve", "Run the sidecar beside PostgreSQL: validate pushed versions, answer mad.predict requests (and, as they arrive, score work) until Ctrl-C.") { id, http };
        cli.SetAction(command, async (parse, ct) =>
        {
            var db = cli.RequireDb(parse);
            if (!MadStore.IsPostgres(db))
            {
                throw new ModelAsDataException(ErrorCode.InvalidArgument,
                    "mad serve runs beside PostgreSQL: pass --db \"Host=...;Database=...\". The embedded SQLite store needs no sidecar: it scores in-process.");
            }

            var options = parse.GetValue(id) is { Length: > 0 } name ? new SidecarOptions { SidecarId = name } : new SidecarOptions();
            options = options with { Http = parse.GetValue(http) is { Length: > 0 } endpoint ? endpoint : Environment.GetEnvironmentVariable("MAD_HTTP") is { Length: > 0 } fromEnv ? fromEnv : null };
            options.Validate();
            cli.Console.MarkupLineInterpolated($"Sidecar {options.SidecarId} starting; Ctrl-C stops it.");
            await SidecarHost.RunAsync(db, options, ct);
            return 0;
        });
        return command;
    }
}

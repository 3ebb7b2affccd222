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
            Description = "Also serve HTTP (Open Inference Protocol v2, bearer tokens from `mad tokens create`) at host:port. Alone: 127.0.0.1:8080; a port alone binds to loopback; " +
                "0.0.0.0:8080 listens on every interface. Default: $MAD_HTTP.",
            Arity = ArgumentArity.ZeroOrOne,
        };
        var metrics = new Option<string?>("--metrics")
        {
            Description = "Where /metrics answers (without a token): on (the HTTP address), off, or host:port of its own. Default: on for a loopback HTTP address, off otherwise; $MAD_METRICS.",
        };
        var maxBody = new Option<long?>("--http-max-body-bytes") { Description = "The largest HTTP request body; larger ones get 413. Default 4194304 (4 MiB); $MAD_HTTP_MAX_BODY_BYTES." };
        var maxRows = new Option<int?>("--http-max-rows") { Description = "The most rows one HTTP inference may carry; more get 400. Default 10000; $MAD_HTTP_MAX_ROWS." };
        var authCache = new Option<int?>("--http-auth-cache")
        {
            Description = "Seconds a token's check is reused: the longest a revoked token or grant still works. Default 5; 0 checks every request; $MAD_HTTP_AUTH_CACHE_SECONDS.",
        };
        var maxLoaded = new Option<int?>("--max-loaded-versions")
        {
            Description = "How many model versions online scoring keeps loaded; the least recently used goes first. Default 8; $MAD_MAX_LOADED_VERSIONS.",
        };
        var command = new Command("serve", "Run the sidecar beside PostgreSQL: validate pushed versions, answer mad.predict requests (and, as they arrive, score work) until Ctrl-C. " +
            "--db must reach PostgreSQL directly, not through a connection pooler (PgBouncer, Supavisor, RDS Proxy): the sidecar needs a session of its own.")
        {
            id, http, metrics, maxBody, maxRows, authCache, maxLoaded,
        };
        cli.SetAction(command, async (parse, ct) =>
        {
            var db = cli.RequireDb(parse);
            if (!MadStore.IsPostgres(db))
            {
                throw new ModelAsDataException(ErrorCode.InvalidArgument,
                    "mad serve runs beside PostgreSQL: pass --db \"Host=...;Database=...\". The embedded SQLite store needs no sidecar: it scores in-process.");
            }

            var options = parse.GetValue(id) is { Length: > 0 } name ? new SidecarOptions { SidecarId = name } : new SidecarOptions();
            options = options with { Http = HttpAddress(parse, http) };
            options = WithHttpOptions(options, parse, metrics, maxBody, maxRows, authCache, maxLoaded);
            try
            {
                options.Validate();
            }
            catch (ArgumentException e)
            {
                throw new ModelAsDataException(ErrorCode.InvalidArgument, e.Message, e);
            }

            cli.Console.MarkupLineInterpolated($"Sidecar {options.SidecarId} starting; Ctrl-C stops it.");
            await SidecarHost.RunAsync(db, options, ct);
            return 0;
        });
        return command;
    }

    /// <summary>--http HOST:PORT, --http alone (loopback 8080), else $MAD_HTTP, else no HTTP door.</summary>
    private static string? HttpAddress(ParseResult parse, Option<string?> http) =>
        parse.GetResult(http) is not null
            ? parse.GetValue(http) is { Length: > 0 } endpoint ? endpoint : "127.0.0.1:8080"
            : Environment.GetEnvironmentVariable("MAD_HTTP") is { Length: > 0 } fromEnv ? fromEnv : null;

    private static SidecarOptions WithHttpOptions(SidecarOptions options, ParseResult parse, Option<string?> metrics, Option<long?> maxBody, Option<int?> maxRows,
        Option<int?> authCache, Option<int?> maxLoaded)
    {
        var door = options.HttpDoor;
        door = parse.GetValue(metrics) is { Length: > 0 } place ? door with { Metrics = place } : door;
        door = parse.GetValue(maxBody) is { } bytes ? door with { MaxBodyBytes = bytes } : door;
        door = parse.GetValue(maxRows) is { } rows ? door with { MaxRows = rows } : door;
        door = parse.GetValue(authCache) is { } seconds ? door with { AuthCacheTime = TimeSpan.FromSeconds(seconds) } : door;
        options = options with { HttpDoor = door };
        return parse.GetValue(maxLoaded) is { } loaded ? options with { MaxLoadedVersions = loaded } : options;
    }
}

using System.CommandLine;
using System.Globalization;
using ModelAsData.Core;
using ModelAsData.Postgres;
using ModelAsData.Postgres.Tokens;
using Spectre.Console;

namespace ModelAsData.Cli.Commands;

/// <summary>
/// <c>mad tokens create | list | revoke</c>: the bearer tokens of the sidecar's HTTP door (PostgreSQL only; needs
/// <c>mad_admin</c>). The embedded SQLite store has no HTTP door, so it has no tokens either.
/// </summary>
internal static class TokensCommand
{
    public static Command Create(CliContext cli)
    {
        var tokens = new Command("tokens",
            "Manage the bearer tokens of the sidecar's HTTP door (`mad serve --http`), each acting as one database role (PostgreSQL, as mad_admin). " +
            "SQLite has no HTTP door: it scores in-process.");
        tokens.Subcommands.Add(CreateToken(cli));
        tokens.Subcommands.Add(List(cli));
        tokens.Subcommands.Add(Revoke(cli));
        return tokens;
    }

    private static Command CreateToken(CliContext cli)
    {
        var role = new Option<string>("--role")
        {
            Description = "The database role the token acts as; to score it needs role mad_user (e.g. CREATE ROLE app_scorer NOLOGIN IN ROLE mad_user).",
            Required = true,
        };
        var label = new Option<string>("--label") { Description = "A name for the token (lower-case letters, digits, _ . -), used to list and revoke it.", Required = true };
        var expires = new Option<DateTimeOffset?>("--expires") { Description = "When the token stops working, e.g. 2027-01-01T00:00Z (default: never)." };
        var command = new Command("create", "Create a token and print it once: only its sha256 is stored, so keep it now.") { role, label, expires };
        cli.SetAction(command, async (parse, ct) =>
        {
            await using var dataSource = OpenPostgres(cli, parse);
            var token = await new PostgresHttpTokens(dataSource).CreateAsync(parse.GetValue(role)!, parse.GetValue(label)!, parse.GetValue(expires), ct);
            cli.Console.WriteLine(token);
            cli.Console.MarkupLineInterpolated($"[grey]Token '{parse.GetValue(label)}' acts as role {parse.GetValue(role)}; it is shown only now. Send it as `Authorization: Bearer <token>`.[/]");
            return 0;
        });
        return command;
    }

    private static Command List(CliContext cli)
    {
        var command = new Command("list", "List the tokens (label, role, live / expired / revoked, who made them and when); never the tokens themselves.");
        cli.SetAction(command, async (parse, ct) =>
        {
            await using var dataSource = OpenPostgres(cli, parse);
            var view = new Table().AddColumns("label", "role", "status", "created", "by", "expires", "revoked", "by");
            foreach (var t in await new PostgresHttpTokens(dataSource).ListAsync(ct))
            {
                view.AddRow(Markup.Escape(t.Label), Markup.Escape(t.Role), t.Status, Time(t.CreatedAt), Markup.Escape(t.CreatedBy), Time(t.ExpiresAt), Time(t.RevokedAt), Markup.Escape(t.RevokedBy ?? ""));
            }

            cli.Console.Write(view);
            return 0;
        });
        return command;
    }

    private static Command Revoke(CliContext cli)
    {
        var label = new Argument<string>("label") { Description = "The label of the live token to revoke." };
        var command = new Command("revoke", "Revoke a token: sidecars refuse it within their token cache time (5 s by default).") { label };
        cli.SetAction(command, async (parse, ct) =>
        {
            await using var dataSource = OpenPostgres(cli, parse);
            await new PostgresHttpTokens(dataSource).RevokeAsync(parse.GetValue(label)!, ct);
            cli.Console.MarkupLineInterpolated($"Revoked token '{parse.GetValue(label)}'.");
            return 0;
        });
        return command;
    }

    private static Npgsql.NpgsqlDataSource OpenPostgres(CliContext cli, ParseResult parse)
    {
        var db = cli.RequireDb(parse);
        if (!MadStore.IsPostgres(db))
        {
            throw new ModelAsDataException(ErrorCode.NotSupported,
                "Tokens guard the sidecar's HTTP door, which runs beside PostgreSQL (`mad serve --http`): pass --db \"Host=...;Database=...\". " +
                "The embedded SQLite store has no HTTP door (it scores in-process through predict()), so it has no tokens.");
        }

        return PostgresDataSource.Create(db, "mad tokens");
    }

    private static string Time(DateTime? at) => at?.ToString("yyyy-MM-dd HH:mm:ss'Z'", CultureInfo.InvariantCulture) ?? "";
}

using System.CommandLine;
using System.Text.Json.Nodes;
using ModelAsData.Core;
using ModelAsData.Core.Onnx;
using ModelAsData.Core.Registry;
using Spectre.Console;

namespace ModelAsData.Cli.Commands;

/// <summary><c>mad models push | list | show | alias | rollback | history</c>.</summary>
internal static class ModelsCommand
{
    public static Command Create(CliContext cli)
    {
        var models = new Command("models", "Manage models, their versions and aliases.");
        models.Subcommands.Add(Push(cli));
        models.Subcommands.Add(List(cli));
        models.Subcommands.Add(Show(cli));
        models.Subcommands.Add(Alias(cli));
        models.Subcommands.Add(Rollback(cli));
        models.Subcommands.Add(History(cli));
        models.Subcommands.Add(ValidateCommand.Create());
        return models;
    }

    /// <summary>Models up to this size are loaded by the CLI before they are pushed; larger ones are streamed.</summary>
    private const long LocalCheckBytes = 64L * 1024 * 1024;

    private static Command Push(CliContext cli)
    {
        var name = new Argument<string>("name") { Description = "The model's name, e.g. churn." };
        var file = new Argument<FileInfo>("file") { Description = "The .onnx file to store as the model's next version." };
        var alias = new Option<string?>("--alias") { Description = "Point this alias (e.g. production) at the new version." };
        var meta = new Option<string[]>("--meta") { Description = "Metadata as key=value, repeatable; a value that is JSON is kept as JSON.", AllowMultipleArgumentsPerToken = false };
        var wait = new Option<TimeSpan>("--wait") { Description = "With --alias on PostgreSQL: how long to wait for a sidecar to validate the version.", DefaultValueFactory = _ => TimeSpan.FromSeconds(60) };
        var command = new Command("push", "Store an ONNX file as a new version of a model.") { name, file, alias, meta, wait };
        cli.SetAction(command, async (parse, ct) =>
        {
            var path = parse.GetValue(file)!;
            if (!path.Exists)
            {
                throw new ModelAsDataException(ErrorCode.InvalidArgument, $"No file {path.FullName}: give the path of an .onnx file.");
            }

            // On PostgreSQL a model up to 64 MiB is loaded here first, to fail fast with ONNX Runtime's reason before
            // anything is registered; a larger one is streamed from the file in chunks, never held whole here, and the
            // sidecar validates it. The embedded store validates as it stores: a small model here, a file larger than
            // one chunk in a child process of this CLI (ChildValidation), so that this process stays small.
            ModelSignature? signature = null;
            await using var onnx = File.OpenRead(path.FullName);
            await using var store = await MadStore.OpenAsync(cli.RequireDb(parse), ct);
            if (store.Sqlite is null && onnx.Length <= LocalCheckBytes)
            {
                var bytes = await File.ReadAllBytesAsync(path.FullName, ct);
                signature = MadStore.Cache.GetOrLoad(Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(bytes)), () => bytes).Signature;
            }

            var version = await store.Registry.PushAsync(parse.GetValue(name)!, onnx, Metadata(parse.GetValue(meta) ?? []), ct);
            cli.Console.MarkupLineInterpolated($"Pushed [bold]{version}[/] ({version.SizeBytes:N0} bytes, sha256 {version.Sha256[..12]}…): {version.Status.ToString().ToLowerInvariant()}.");
            if ((signature ?? version.Signature) is { } known)
            {
                cli.Console.MarkupLineInterpolated($"  inputs:  {known.DescribeInputs()}");
                cli.Console.MarkupLineInterpolated($"  columns: {string.Join(", ", known.Columns.Select(c => c.Name))}");
            }
            else
            {
                cli.Console.MarkupLineInterpolated($"  inputs and columns: once a sidecar has validated it (mad models show {version})");
            }

            if (parse.GetValue(alias) is { } target)
            {
                if (version.Status == VersionStatus.Pending)
                {
                    cli.Console.MarkupLineInterpolated($"Waiting for a sidecar (mad serve) to validate {version} before moving {version.Model}@{target}…");
                    version = await store.Registry.WaitForValidationAsync(version.Model, version.Version, parse.GetValue(wait), ct);
                }

                if (version.Status != VersionStatus.Ready)
                {
                    throw new ModelAsDataException(ErrorCode.InvalidModel, $"{version} was rejected ({version.Reason}); {version.Model}@{target} was not moved.");
                }

                var move = await store.Registry.SetAliasAsync(version.Model, target, version.Version, "pushed with --alias", ct);
                cli.Console.MarkupLineInterpolated($"{move.Model}@{move.Alias} → {move.To}{(move.From is { } from ? $" (was {from})" : "")}");
            }

            return 0;
        });
        return command;
    }

    private static Command List(CliContext cli)
    {
        var command = new Command("list", "List models with their versions and aliases.");
        cli.SetAction(command, async (parse, ct) =>
        {
            await using var store = await MadStore.OpenAsync(cli.RequireDb(parse), ct);
            var models = await store.Registry.ListAsync(ct);
            if (models.Count == 0)
            {
                cli.Console.MarkupLine("No models yet. Push one with: mad models push NAME FILE.onnx --alias production");
                return 0;
            }

            var table = new Table().AddColumns("model", "versions", "newest ready", "aliases", "updated");
            foreach (var m in models)
            {
                table.AddRow(
                    Markup.Escape(m.Model),
                    m.Versions.ToString(System.Globalization.CultureInfo.InvariantCulture),
                    m.LatestReady?.ToString(System.Globalization.CultureInfo.InvariantCulture) ?? "-",
                    Markup.Escape(string.Join(", ", m.Aliases.Select(a => $"{a.Key} → {a.Value}"))),
                    m.UpdatedAt.ToString("u", System.Globalization.CultureInfo.InvariantCulture));
            }

            cli.Console.Write(table);
            return 0;
        });
        return command;
    }

    private static Command Show(CliContext cli)
    {
        var reference = new Argument<string>("reference") { Description = "name, name@alias or name@version." };
        var command = new Command("show", "Show one version: status, signature, sha256, size, metadata and aliases.") { reference };
        cli.SetAction(command, async (parse, ct) =>
        {
            await using var store = await MadStore.OpenAsync(cli.RequireDb(parse), ct);
            var version = await store.Registry.ResolveAsync(ModelReference.Parse(parse.GetValue(reference)), ct);
            var aliases = (await store.Registry.AliasesAsync(version.Model, ct)).Where(a => a.Value == version.Version).Select(a => a.Key);
            var grid = new Grid().AddColumn().AddColumn();
            grid.AddRow("version", Markup.Escape(version.ToString()));
            grid.AddRow("status", Markup.Escape(version.Status.ToString().ToLowerInvariant() + (version.Reason is null ? "" : $": {version.Reason}")));
            grid.AddRow("aliases", Markup.Escape(string.Join(", ", aliases)));
            grid.AddRow("sha256", version.Sha256);
            grid.AddRow("size", $"{version.SizeBytes:N0} bytes");
            grid.AddRow("created", Markup.Escape($"{version.CreatedAt:u} by {version.CreatedBy}"));
            grid.AddRow("metadata", Markup.Escape(version.Metadata.ToJsonString()));
            if (version.Signature is { } signature)
            {
                grid.AddRow("inputs", Markup.Escape(signature.DescribeInputs()));
                grid.AddRow("outputs", Markup.Escape(string.Join(", ", signature.Outputs.Select(o => $"{o.Name} {o.Type.ToString().ToLowerInvariant()}[{string.Join(',', o.Shape)}]"))));
                grid.AddRow("columns", Markup.Escape(string.Join(", ", signature.Columns.Select(c => $"{c.Name} {c.Type.ToString().ToLowerInvariant()}"))));
            }

            cli.Console.Write(grid);
            return 0;
        });
        return command;
    }

    private static Command Alias(CliContext cli)
    {
        var name = new Argument<string>("name") { Description = "The model." };
        var alias = new Argument<string>("alias") { Description = "The alias to move, e.g. production." };
        var version = new Argument<int>("version") { Description = "The ready version it should point at." };
        var reason = new Option<string?>("--reason") { Description = "Why, kept in the alias history." };
        var command = new Command("alias", "Point an alias at a version (creating it if needed); the move is kept in its history.") { name, alias, version, reason };
        cli.SetAction(command, async (parse, ct) =>
        {
            await using var store = await MadStore.OpenAsync(cli.RequireDb(parse), ct);
            var move = await store.Registry.SetAliasAsync(parse.GetValue(name)!, parse.GetValue(alias)!, parse.GetValue(version), parse.GetValue(reason), ct);
            cli.Console.MarkupLineInterpolated($"{move.Model}@{move.Alias} → {move.To}{(move.From is { } from ? $" (was {from})" : " (new alias)")}");
            return 0;
        });
        return command;
    }

    private static Command Rollback(CliContext cli)
    {
        var name = new Argument<string>("name") { Description = "The model." };
        var alias = new Argument<string>("alias") { Description = "The alias to move back to the version it pointed at before its last move." };
        var command = new Command("rollback", "Move an alias back to its previous version.") { name, alias };
        cli.SetAction(command, async (parse, ct) =>
        {
            await using var store = await MadStore.OpenAsync(cli.RequireDb(parse), ct);
            var move = await store.Registry.RollbackAliasAsync(parse.GetValue(name)!, parse.GetValue(alias)!, ct);
            cli.Console.MarkupLineInterpolated($"{move.Model}@{move.Alias} → {move.To} (rolled back from {move.From})");
            return 0;
        });
        return command;
    }

    private static Command History(CliContext cli)
    {
        var name = new Argument<string>("name") { Description = "The model." };
        var alias = new Argument<string>("alias") { Description = "The alias." };
        var command = new Command("history", "Every move of an alias: who, when, from, to and why.") { name, alias };
        cli.SetAction(command, async (parse, ct) =>
        {
            await using var store = await MadStore.OpenAsync(cli.RequireDb(parse), ct);
            var table = new Table().AddColumns("when", "from", "to", "who", "why");
            foreach (var move in await store.Registry.AliasHistoryAsync(parse.GetValue(name)!, parse.GetValue(alias)!, ct))
            {
                table.AddRow(Markup.Escape(move.MovedAt.ToString("u", System.Globalization.CultureInfo.InvariantCulture)),
                    move.From?.ToString(System.Globalization.CultureInfo.InvariantCulture) ?? "-", move.To.ToString(System.Globalization.CultureInfo.InvariantCulture),
                    Markup.Escape(move.MovedBy), Markup.Escape(move.Reason ?? ""));
            }

            cli.Console.Write(table);
            return 0;
        });
        return command;
    }

    /// <summary>Parses <c>k=v</c> pairs; a value that parses as JSON (a number, an object, a list) is kept as JSON.</summary>
    internal static JsonObject Metadata(IEnumerable<string> pairs)
    {
        var metadata = new JsonObject();
        foreach (var pair in pairs)
        {
            var equals = pair.IndexOf('=', StringComparison.Ordinal);
            if (equals <= 0)
            {
                throw new ModelAsDataException(ErrorCode.InvalidArgument, $"--meta takes key=value; got '{pair}'.");
            }

            var value = pair[(equals + 1)..];
            JsonNode? node;
            try
            {
                node = JsonNode.Parse(value);
            }
            catch (System.Text.Json.JsonException)
            {
                node = JsonValue.Create(value);
            }

            metadata[pair[..equals]] = node;
        }

        return metadata;
    }
}

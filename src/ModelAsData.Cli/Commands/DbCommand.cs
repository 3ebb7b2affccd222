using System.CommandLine;
using Spectre.Console;

namespace ModelAsData.Cli.Commands;

/// <summary><c>mad db migrate</c>.</summary>
internal static class DbCommand
{
    public static Command Create(CliContext cli)
    {
        var migrate = new Command("migrate", "Create or upgrade the registry's schema; safe to run again.");
        cli.SetAction(migrate, async (parse, ct) =>
        {
            await using var store = await MadStore.OpenAsync(CliContext.RequireDb(parse), ct);
            await store.Registry.MigrateAsync(ct);
            cli.Console.MarkupLineInterpolated($"The {store.Registry.Kind} registry is up to date.");
            return 0;
        });
        return new Command("db", "Manage the database schema.") { migrate };
    }
}

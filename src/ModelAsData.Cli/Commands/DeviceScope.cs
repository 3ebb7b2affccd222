using System.CommandLine;
using System.Text.RegularExpressions;
using ModelAsData.Core;
using ModelAsData.Postgres;

namespace ModelAsData.Cli.Commands;

/// <summary>
/// <c>--device</c> on the central reports (<c>mad monitor drift | performance | compare</c>): one edge device's pushed
/// rows only (docs/SYNC.md), by setting <c>mad.device</c>, which mad.drift_counts and mad.served_predictions read, in
/// the connection's startup options. PostgreSQL only: a device file's reports are its own already.
/// </summary>
internal static partial class DeviceScope
{
    public static Option<string?> Option() => new("--device")
    {
        Description = "PostgreSQL: only this edge device's pushed rows, e.g. shop-17 (docs/SYNC.md); default: the central rows and every device's.",
    };

    /// <summary>The connection string with <c>-c mad.device=…</c> added to its options; unchanged without a device.</summary>
    public static string Apply(string db, string? device)
    {
        if (device is null)
        {
            return db;
        }

        if (!MadStore.IsPostgres(db))
        {
            throw new ModelAsDataException(ErrorCode.InvalidArgument,
                $"--device narrows a central PostgreSQL database's reports to one device's pushed rows; {db} is a device file, whose reports are its own. Drop --device, or pass the central database as --db.");
        }

        // The id as mad.devices spells it (023's CHECK): no spaces or quotes can reach the startup options.
        if (!DeviceId().IsMatch(device))
        {
            throw new ModelAsDataException(ErrorCode.InvalidArgument,
                $"Invalid device id '{device}': use lower-case letters, digits, '_', '.' and '-', at most 63 characters (e.g. shop-17).");
        }

        var builder = PostgresConnectionString.Parse(db);
        builder.Options = $"{builder.Options} -c mad.device={device}".TrimStart();
        return builder.ConnectionString;
    }

    [GeneratedRegex("^[a-z0-9][a-z0-9_.-]{0,62}$")]
    private static partial Regex DeviceId();
}

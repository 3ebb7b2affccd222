using System.Globalization;
using ModelAsData.Core;
using Npgsql;

namespace ModelAsData.Postgres;

/// <summary>
/// Reads what users pass as <c>--db</c> / <c>MAD_DB</c>: an Npgsql connection string (<c>Host=…;Database=…</c>) or a
/// libpq URI (<c>postgres://user:password@host:5432/db?sslmode=require</c>), which Npgsql itself does not accept.
/// </summary>
public static class PostgresConnectionString
{
    /// <summary>The settings of <paramref name="value"/>; anything unreadable throws <see cref="ErrorCode.InvalidArgument"/> saying how to write it.</summary>
    public static NpgsqlConnectionStringBuilder Parse(string value)
    {
        ArgumentNullException.ThrowIfNull(value);
        try
        {
            return IsUri(value) ? FromUri(value) : new NpgsqlConnectionStringBuilder(value);
        }
        catch (Exception e) when (e is ArgumentException or FormatException or UriFormatException or KeyNotFoundException)
        {
            throw new ModelAsDataException(ErrorCode.InvalidArgument,
                $"Not a PostgreSQL connection string ({e.Message}): write it as \"Host=localhost;Port=5432;Database=mydb;Username=me\" " +
                "or as postgres://me@localhost:5432/mydb.", e);
        }
    }

    /// <summary>
    /// The search_path of every session the sidecar opens (its data source, request session and listener; not the
    /// CLI's store sessions, where a user's unqualified <c>--source sales</c> resolves with the login's search_path):
    /// pg_catalog, then pg_temp last, so a role with CREATE on public (or any schema a user's own search_path names)
    /// cannot shadow a built-in with a more specific overload (CVE-2018-1058: <c>public.to_jsonb(text)</c> beats
    /// <c>pg_catalog.to_jsonb(anyelement)</c> for a text argument, even with pg_catalog searched first). Nothing mad
    /// runs needs more: its objects are written <c>mad.</c>/<c>mad_out.</c> and user tables come qualified.
    /// </summary>
    public const string PinnedSearchPath = "pg_catalog, pg_temp";

    /// <summary>
    /// Pins <see cref="PinnedSearchPath"/> over whatever <paramref name="builder"/> said. Npgsql sends it as the
    /// <c>search_path</c> startup parameter, not as a <c>SET</c> after connecting: a SET on a physical connection
    /// would, behind a transaction-mode pooler (PgBouncer), stay on the server connection and leak to other clients
    /// (or be missing on the next one), while a startup parameter is what PgBouncer tracks per client and re-applies
    /// on every server connection it hands out (<c>track_extra_parameters = search_path</c>, PgBouncer 1.20+). An
    /// older PgBouncer refuses the parameter at connect time, unless told to drop it (<c>ignore_startup_parameters</c>),
    /// which runs unpinned: hence the built-ins in mad's own C# statements are written <c>pg_catalog.</c> as well.
    /// </summary>
    public static NpgsqlConnectionStringBuilder PinSearchPath(NpgsqlConnectionStringBuilder builder)
    {
        ArgumentNullException.ThrowIfNull(builder);
        builder.SearchPath = PinnedSearchPath;
        return builder;
    }

    /// <summary>
    /// Caps how long every statement of the session waits for a lock (<c>lock_timeout</c>), over whatever
    /// <paramref name="builder"/> said, sent as <c>-c lock_timeout=…</c> in the <c>options</c> startup parameter
    /// beside the pinned search_path, for the same reason: a pooler re-applies startup parameters per client (PgBouncer
    /// 1.20+ accepts <c>options</c> for the parameters it tracks: add <c>lock_timeout</c> to
    /// <c>track_extra_parameters</c>), where a <c>SET</c> would stay on a server connection. Any login may take an
    /// advisory lock the sidecar waits on (their keys are public), so without a cap it would wait forever; past it the
    /// statement fails with 55P03 lock_not_available and the sidecar says who holds the lock. Functions that wait on a
    /// lock (<c>mad.stream_set_notify</c>) also cap their own wait where the session has no cap (a pooler that drops
    /// the parameter). The rest of <c>options</c> is kept.
    /// </summary>
    public static NpgsqlConnectionStringBuilder PinLockTimeout(NpgsqlConnectionStringBuilder builder, TimeSpan lockTimeout)
    {
        ArgumentNullException.ThrowIfNull(builder);
        ArgumentOutOfRangeException.ThrowIfLessThan(lockTimeout, TimeSpan.FromMilliseconds(1));
        // Appended: the server applies options in order, so this one wins over a lock_timeout the user's options set.
        var setting = string.Create(CultureInfo.InvariantCulture, $"-c lock_timeout={(long)Math.Ceiling(lockTimeout.TotalMilliseconds)}ms");
        builder.Options = string.IsNullOrWhiteSpace(builder.Options) ? setting : $"{builder.Options.Trim()} {setting}";
        return builder;
    }

    public static bool IsUri(string value) =>
        value.StartsWith("postgres://", StringComparison.OrdinalIgnoreCase) || value.StartsWith("postgresql://", StringComparison.OrdinalIgnoreCase);

    private static NpgsqlConnectionStringBuilder FromUri(string value)
    {
        var uri = new Uri(value);
        var builder = new NpgsqlConnectionStringBuilder
        {
            Host = string.IsNullOrEmpty(uri.Host) ? "localhost" : uri.Host.Trim('[', ']'),
        };
        if (uri.Port > 0)
        {
            builder.Port = uri.Port;
        }

        if (uri.UserInfo.Length > 0)
        {
            var colon = uri.UserInfo.IndexOf(':', StringComparison.Ordinal);
            builder.Username = Uri.UnescapeDataString(colon < 0 ? uri.UserInfo : uri.UserInfo[..colon]);
            if (colon >= 0)
            {
                builder.Password = Uri.UnescapeDataString(uri.UserInfo[(colon + 1)..]);
            }
        }

        var database = Uri.UnescapeDataString(uri.AbsolutePath.TrimStart('/'));
        if (database.Length > 0)
        {
            builder.Database = database;
        }

        foreach (var pair in uri.Query.TrimStart('?').Split('&', StringSplitOptions.RemoveEmptyEntries))
        {
            var equals = pair.IndexOf('=', StringComparison.Ordinal);
            var key = Uri.UnescapeDataString(equals < 0 ? pair : pair[..equals]);
            var setting = equals < 0 ? "" : Uri.UnescapeDataString(pair[(equals + 1)..]);
            // libpq's parameter names where they differ from Npgsql's; the rest are passed as they are.
            builder[key switch
            {
                "sslmode" => "SSL Mode",
                "application_name" => "Application Name",
                "connect_timeout" => "Timeout",
                "options" => "Options",
                _ => key,
            }] = key == "sslmode" ? SslMode(setting) : setting;
        }

        return builder;
    }

    private static string SslMode(string libpq) => libpq switch
    {
        "verify-ca" => "VerifyCA",
        "verify-full" => "VerifyFull",
        _ => libpq,
    };
}

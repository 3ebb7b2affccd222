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

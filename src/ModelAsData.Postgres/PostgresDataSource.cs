using ModelAsData.Core;
using Npgsql;

namespace ModelAsData.Postgres;

/// <summary>Builds the one <see cref="NpgsqlDataSource"/> a process uses for a database.</summary>
public static class PostgresDataSource
{
    /// <summary>
    /// A data source for <paramref name="connectionString"/> (a connection string or a postgres:// URI); the caller
    /// owns and disposes it. A string that is neither throws <see cref="ErrorCode.InvalidArgument"/>.
    /// <paramref name="pinSearchPath"/> (the sidecar's sessions) pins <see cref="PostgresConnectionString.PinnedSearchPath"/>;
    /// without it the login's search_path stays, because the CLI and the library resolve the table names users give
    /// (<c>--source sales</c>) with it, as documented. <paramref name="lockTimeout"/> (the sidecar's sessions) caps
    /// every lock wait (<see cref="PostgresConnectionString.PinLockTimeout"/>).
    /// </summary>
    public static NpgsqlDataSource Create(string connectionString, string applicationName = "mad", bool pinSearchPath = false, TimeSpan? lockTimeout = null)
    {
        var builder = PostgresConnectionString.Parse(connectionString);
        if (string.IsNullOrEmpty(builder.ApplicationName))
        {
            builder.ApplicationName = applicationName;
        }

        // Pinned, every connection of the data source and those built from its ConnectionString (the sidecar's
        // request session) start with it: the pin lives in the connection string, in one place.
        if (pinSearchPath)
        {
            PostgresConnectionString.PinSearchPath(builder);
        }

        if (lockTimeout is { } timeout)
        {
            PostgresConnectionString.PinLockTimeout(builder, timeout);
        }

        return new NpgsqlDataSourceBuilder(builder.ConnectionString).Build();
    }
}

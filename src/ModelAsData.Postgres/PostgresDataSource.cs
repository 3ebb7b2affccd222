using ModelAsData.Core;
using Npgsql;

namespace ModelAsData.Postgres;

/// <summary>Builds the one <see cref="NpgsqlDataSource"/> a process uses for a database.</summary>
public static class PostgresDataSource
{
    /// <summary>
    /// A data source for <paramref name="connectionString"/> (a connection string or a postgres:// URI); the caller
    /// owns and disposes it. A string that is neither throws <see cref="ErrorCode.InvalidArgument"/>.
    /// </summary>
    public static NpgsqlDataSource Create(string connectionString, string applicationName = "mad")
    {
        var builder = PostgresConnectionString.Parse(connectionString);
        if (string.IsNullOrEmpty(builder.ApplicationName))
        {
            builder.ApplicationName = applicationName;
        }

        return new NpgsqlDataSourceBuilder(builder.ConnectionString).Build();
    }
}

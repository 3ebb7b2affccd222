using ModelAsData.Core;
using Npgsql;

namespace ModelAsData.Postgres;

/// <summary>Builds the one <see cref="NpgsqlDataSource"/> a process uses for a database.</summary>
public static class PostgresDataSource
{
    /// <summary>
    /// A data source for <paramref name="connectionString"/>; the caller owns and disposes it. A string that is not a
    /// PostgreSQL connection string throws <see cref="ErrorCode.InvalidArgument"/>.
    /// </summary>
    public static NpgsqlDataSource Create(string connectionString, string applicationName = "mad")
    {
        NpgsqlConnectionStringBuilder builder;
        try
        {
            builder = new NpgsqlConnectionStringBuilder(connectionString);
        }
        catch (ArgumentException e)
        {
            throw new ModelAsDataException(ErrorCode.InvalidArgument,
                $"Not a PostgreSQL connection string ({e.Message}): write it as \"Host=localhost;Port=5432;Database=mydb;Username=me\".", e);
        }

        if (string.IsNullOrEmpty(builder.ApplicationName))
        {
            builder.ApplicationName = applicationName;
        }

        return new NpgsqlDataSourceBuilder(builder.ConnectionString).Build();
    }
}

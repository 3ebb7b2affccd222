using Dapper;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using ModelAsData.Core;
using ModelAsData.Postgres;
using Npgsql;

namespace ModelAsData.Sidecar;

/// <summary>
/// Builds and runs the sidecar (<c>mad serve</c>) against one PostgreSQL database: the entry point the CLI calls.
/// </summary>
public static class SidecarHost
{
    /// <summary>
    /// A host builder with the sidecar's services and no logging providers, for callers that add their own
    /// (console, files) or more services before <c>Build()</c>.
    /// </summary>
    public static HostApplicationBuilder CreateBuilder(string connectionString, SidecarOptions? options = null)
    {
        var builder = Host.CreateEmptyApplicationBuilder(new HostApplicationBuilderSettings());
        builder.Services.AddModelAsDataSidecar(connectionString, options);
        return builder;
    }

    /// <summary>The sidecar's host; <paramref name="configureLogging"/> picks where logs go (none by default). The caller disposes it.</summary>
    public static IHost Build(string connectionString, SidecarOptions? options = null, Action<ILoggingBuilder>? configureLogging = null)
    {
        var builder = CreateBuilder(connectionString, options);
        configureLogging?.Invoke(builder.Logging);
        return builder.Build();
    }

    /// <summary>
    /// Checks the database (it answers directly, not through a pooler, and is migrated), then runs the sidecar with console logs until
    /// <paramref name="cancellationToken"/> is cancelled (Ctrl-C in the CLI). A database that cannot be reached or has
    /// no <c>mad</c> schema throws <see cref="ModelAsDataException"/> (<see cref="ErrorCode.Database"/>) saying what to do.
    /// </summary>
    public static async Task RunAsync(string connectionString, SidecarOptions? options = null, CancellationToken cancellationToken = default)
    {
        await CheckDatabaseAsync(connectionString, cancellationToken);
        using var host = Build(connectionString, options, logging => logging
            .AddSimpleConsole(console =>
            {
                console.SingleLine = true;
                console.TimestampFormat = "HH:mm:ss ";
            })
            .SetMinimumLevel(LogLevel.Information));
        await host.RunAsync(cancellationToken);
    }

    /// <summary>
    /// Throws <see cref="ErrorCode.Database"/> when the database cannot be reached or has not been migrated, and
    /// <see cref="ErrorCode.NotSupported"/> when the connection string reaches a connection pooler
    /// (<see cref="PostgresDirectConnection"/>): the sidecar needs a session of its own.
    /// </summary>
    public static async Task CheckDatabaseAsync(string connectionString, CancellationToken cancellationToken = default)
    {
        await using var dataSource = PostgresDataSource.Create(connectionString, "mad serve", pinSearchPath: true);
        bool migrated;
        try
        {
            await PostgresDirectConnection.RequireAsync(dataSource, "mad serve", cancellationToken);
            await using var connection = await dataSource.OpenConnectionAsync(cancellationToken);
            migrated = await connection.ExecuteScalarAsync<bool>(new CommandDefinition(SidecarSql.SchemaReady, cancellationToken: cancellationToken));
        }
        catch (Exception e) when (PostgresErrors.CanMap(e))
        {
            throw PostgresErrors.Map(e, dataSource);
        }

        if (!migrated)
        {
            throw new ModelAsDataException(ErrorCode.Database,
                $"The database at {PostgresErrors.Describe(connectionString)} has no ModelAsData schema: run `mad db migrate` first, then `mad serve`.");
        }
    }
}

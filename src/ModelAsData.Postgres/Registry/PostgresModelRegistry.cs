using System.Globalization;
using System.Text.Json.Nodes;
using Dapper;
using ModelAsData.Core;
using ModelAsData.Core.Registry;
using ModelAsData.Postgres.Migrations;
using Npgsql;

namespace ModelAsData.Postgres.Registry;

/// <summary>
/// The model registry in a PostgreSQL database (schema <c>mad</c>). Versions are pushed <c>pending</c> and validated
/// by a sidecar (<c>mad serve</c>). Every call goes through the <c>mad</c> SQL functions, so SQL users and this class
/// share one set of rules, and every failure is a <see cref="ModelAsDataException"/>. Uses one pooled
/// <see cref="NpgsqlDataSource"/>; disposes it only when it created it. Safe to use from several threads.
/// </summary>
public sealed partial class PostgresModelRegistry : IModelRegistry
{
    private readonly NpgsqlDataSource _dataSource;
    private readonly bool _ownsDataSource;

    /// <summary>A registry over an existing data source, which the caller keeps owning.</summary>
    public PostgresModelRegistry(NpgsqlDataSource dataSource)
        : this(dataSource, ownsDataSource: false)
    {
    }

    private PostgresModelRegistry(NpgsqlDataSource dataSource, bool ownsDataSource)
    {
        _dataSource = dataSource;
        _ownsDataSource = ownsDataSource;
    }

    public string Kind => "postgres";

    /// <summary>The data source every call uses.</summary>
    public NpgsqlDataSource DataSource => _dataSource;

    /// <summary>
    /// Opens the registry of the database <paramref name="connectionString"/> names and checks that it answers, so
    /// "no database at all" fails here with a message naming host and port. The registry owns its data source.
    /// </summary>
    public static async Task<PostgresModelRegistry> OpenAsync(string connectionString, CancellationToken cancellationToken = default)
    {
        var dataSource = PostgresDataSource.Create(connectionString);
        var registry = new PostgresModelRegistry(dataSource, ownsDataSource: true);
        try
        {
            await registry.RunAsync(c => c.ExecuteScalarAsync<int>(Command(RegistrySql.Ping, null, cancellationToken)), cancellationToken);
            return registry;
        }
        catch
        {
            await registry.DisposeAsync();
            throw;
        }
    }

    public async Task MigrateAsync(CancellationToken cancellationToken = default) =>
        await new PostgresMigrator(_dataSource).MigrateAsync(cancellationToken);

    public Task<IReadOnlyList<ModelSummary>> ListAsync(CancellationToken cancellationToken = default) =>
        RunAsync<IReadOnlyList<ModelSummary>>(async connection =>
            (await connection.QueryAsync<SummaryRow>(Command(RegistrySql.List, null, cancellationToken))).Select(r => r.ToModel()).ToList(),
            cancellationToken);

    public Task<ModelVersion> ResolveAsync(ModelReference reference, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(reference);
        var target = reference.Version?.ToString(CultureInfo.InvariantCulture) ?? reference.Alias;
        return RunAsync(async connection =>
        {
            var version = await connection.ExecuteScalarAsync<int>(Command(RegistrySql.Resolve, new { model = reference.Model, target }, cancellationToken));
            return await ReadVersionAsync(connection, reference.Model, version, cancellationToken);
        }, cancellationToken);
    }

    public Task<byte[]> LoadBytesAsync(string model, int version, CancellationToken cancellationToken = default) =>
        RunAsync(async connection =>
        {
            byte[]? bytes;
            try
            {
                bytes = await PostgresVersionBytes.ReadAsync(connection, model, version, cancellationToken);
            }
            catch (PostgresException e) when (e.SqlState == PostgresErrorCodes.InsufficientPrivilege)
            {
                throw new ModelAsDataException(ErrorCode.PermissionDenied,
                    $"Reading the ONNX bytes of model '{model}' v{version} needs role mad_admin or mad_sidecar: other roles read every column of " +
                    "mad.model_versions but onnx, and no chunk of mad.model_chunks. Score through the database instead (CALL mad.predict, `mad predict`), or ask an administrator to export the model.", e);
            }

            if (bytes is null)
            {
                // Let mad.resolve name what is missing (the model, or the version, listing those that exist).
                await connection.ExecuteScalarAsync<int>(Command(RegistrySql.Resolve,
                    new { model, target = version.ToString(CultureInfo.InvariantCulture) }, cancellationToken));
                throw new ModelAsDataException(ErrorCode.NotFound, $"Model '{model}' has no version {version}.");
            }

            return bytes;
        }, cancellationToken);

    public ValueTask DisposeAsync() => _ownsDataSource ? _dataSource.DisposeAsync() : ValueTask.CompletedTask;

    private static async Task<ModelVersion> ReadVersionAsync(NpgsqlConnection connection, string model, int version, CancellationToken cancellationToken)
    {
        var row = await connection.QuerySingleAsync<VersionRow>(Command(RegistrySql.Version, new { model, version }, cancellationToken));
        return row.ToModel();
    }

    private static CommandDefinition Command(string sql, object? parameters, CancellationToken cancellationToken, NpgsqlTransaction? transaction = null) =>
        new(sql, parameters, transaction, cancellationToken: cancellationToken);

    /// <summary>Runs <paramref name="work"/> on a pooled connection and turns database failures into <see cref="ModelAsDataException"/>s.</summary>
    internal async Task<T> RunAsync<T>(Func<NpgsqlConnection, Task<T>> work, CancellationToken cancellationToken)
    {
        try
        {
            await using var connection = await _dataSource.OpenConnectionAsync(cancellationToken);
            return await work(connection);
        }
        catch (Exception e) when (PostgresErrors.CanMap(e))
        {
            throw PostgresErrors.Map(e, _dataSource);
        }
    }
}

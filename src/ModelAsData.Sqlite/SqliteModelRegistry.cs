using System.Text.Json.Nodes;
using Dapper;
using Microsoft.Data.Sqlite;
using ModelAsData.Core;
using ModelAsData.Core.Onnx;
using ModelAsData.Core.Registry;

namespace ModelAsData.Sqlite;

/// <summary>
/// The registry in one SQLite file. Versions are validated in-process as they are pushed: ONNX Runtime must load them,
/// so a pushed version is <c>ready</c>, and a model it refuses is never stored. Use from one thread at a time.
/// </summary>
public sealed partial class SqliteModelRegistry : IModelRegistry
{
    private readonly bool _ownsConnection;
    private readonly ModelCache _cache;

    /// <summary>Uses a connection the caller opened and keeps owning; call <see cref="MigrateAsync"/> once first.</summary>
    public SqliteModelRegistry(SqliteConnection connection, ModelCache? cache = null)
        : this(connection, cache, ownsConnection: false)
    {
    }

    private SqliteModelRegistry(SqliteConnection connection, ModelCache? cache, bool ownsConnection)
    {
        Connection = connection;
        _cache = cache ?? ModelCache.Shared;
        _ownsConnection = ownsConnection;
    }

    public string Kind => "sqlite";

    /// <summary>Versions larger than this many bytes are stored in chunks of this size (<see cref="SqliteVersionBytes"/>). Default 16 MiB.</summary>
    public int ChunkBytes { get; init; } = ModelChunks.DefaultBytes;

    /// <summary>The connection the registry works on; <c>predict()</c> can be registered on it too.</summary>
    public SqliteConnection Connection { get; }

    /// <summary>Opens (creating and migrating) the registry in the file at <paramref name="path"/>.</summary>
    public static async Task<SqliteModelRegistry> OpenAsync(string path, CancellationToken cancellationToken = default)
    {
        var connection = await SqliteDatabase.OpenAsync(path, cancellationToken);
        try
        {
            await SqliteMigrator.MigrateAsync(connection, cancellationToken);
            return new SqliteModelRegistry(connection, null, ownsConnection: true);
        }
        catch
        {
            await connection.DisposeAsync();
            throw;
        }
    }

    public Task MigrateAsync(CancellationToken cancellationToken = default) => SqliteMigrator.MigrateAsync(Connection, cancellationToken);

    /// <summary>Versions are validated as they are pushed: this returns the version as it is.</summary>
    public Task<ModelVersion> WaitForValidationAsync(string model, int version, TimeSpan timeout, CancellationToken cancellationToken = default) =>
        GetVersionAsync(model, version, cancellationToken);

    public async Task<IReadOnlyList<ModelSummary>> ListAsync(CancellationToken cancellationToken = default)
    {
        var aliases = (await Connection.QueryAsync<AliasRow>(Command(SqliteRegistrySql.AllAliases, null, null, cancellationToken)))
            .GroupBy(a => a.Model)
            .ToDictionary(g => g.Key, g => (IReadOnlyDictionary<string, int>)g.ToDictionary(a => a.Alias, a => (int)a.Version));
        var models = await Connection.QueryAsync<SummaryRow>(Command(SqliteRegistrySql.Models, null, null, cancellationToken));
        return models.Select(m => new ModelSummary(
            m.Model,
            (int)m.Versions,
            (int?)m.LatestReady,
            aliases.GetValueOrDefault(m.Model) ?? new Dictionary<string, int>(),
            SqliteTime.Parse(m.UpdatedAt))).ToList();
    }

    /// <summary>As PostgreSQL's mad.resolve, with its messages: a bare name is the production alias when it exists, else the newest ready version.</summary>
    public async Task<ModelVersion> ResolveAsync(ModelReference reference, CancellationToken cancellationToken = default)
    {
        if (reference.Version is { } version)
        {
            return await GetVersionAsync(reference.Model, version, cancellationToken);
        }

        var alias = reference.Alias ?? ModelReference.DefaultAlias;
        var target = await Connection.ExecuteScalarAsync<long?>(Command(SqliteRegistrySql.AliasTarget, new { model = reference.Model, alias }, null, cancellationToken));
        if (target is { } aliased)
        {
            return await GetVersionAsync(reference.Model, (int)aliased, cancellationToken);
        }

        await EnsureModelExistsAsync(reference.Model, cancellationToken);
        if (reference.Alias is not null)
        {
            throw SqliteRegistryMessages.NoSuchAlias(reference.Model, reference.Alias, await AliasesAsync(reference.Model, cancellationToken));
        }

        var newest = await Connection.QuerySingleOrDefaultAsync<VersionRow>(Command(SqliteRegistrySql.NewestReady, new { model = reference.Model }, null, cancellationToken));
        return newest?.ToModelVersion() ?? throw SqliteRegistryMessages.NoReadyVersion(reference.Model, await VersionStatusesAsync(reference.Model, cancellationToken));
    }

    /// <summary>
    /// The version loaded in ONNX Runtime, from <paramref name="cache"/> when it is there, else loaded into it: a chunked
    /// version through a temporary file ONNX Runtime reads by its path (no managed copy while it parses the model).
    /// </summary>
    public OnnxModel LoadModel(ModelVersion version, ModelCache cache, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(version);
        ArgumentNullException.ThrowIfNull(cache);
        if (cache.Contains(version.Sha256))
        {
            return cache.GetOrLoad(version.Sha256, () => LoadBytesAsync(version.Model, version.Version, cancellationToken).GetAwaiter().GetResult());
        }

        // Microsoft.Data.Sqlite's async methods complete synchronously: SQL functions call this synchronously too.
        using var file = SqliteVersionBytes.ReadToFileAsync(Connection, SqliteDatabase.OpenTransaction(Connection), version.Model, version.Version, cancellationToken).GetAwaiter().GetResult();
        return file is null
            ? cache.GetOrLoad(version.Sha256, () => LoadBytesAsync(version.Model, version.Version, cancellationToken).GetAwaiter().GetResult())
            : cache.GetOrCreate(version.Sha256, () => OnnxModel.LoadFile(file.Path, cache.Options, version.Sha256));
    }

    /// <summary>The version's bytes, from its chunks when it has them, checked against its sha256.</summary>
    public async Task<byte[]> LoadBytesAsync(string model, int version, CancellationToken cancellationToken = default) =>
        await SqliteVersionBytes.ReadAsync(Connection, SqliteDatabase.OpenTransaction(Connection), model, version, cancellationToken)
        ?? throw await VersionNotFoundAsync(model, version, cancellationToken);

    public async Task<IReadOnlyDictionary<string, int>> AliasesAsync(string model, CancellationToken cancellationToken = default)
    {
        var rows = (await Connection.QueryAsync<(string Alias, long Version)>(Command(SqliteRegistrySql.Aliases, new { model }, null, cancellationToken))).ToList();
        if (rows.Count == 0)
        {
            await EnsureModelExistsAsync(model, cancellationToken);
        }

        return rows.ToDictionary(r => r.Alias, r => (int)r.Version);
    }

    public ValueTask DisposeAsync() => _ownsConnection ? Connection.DisposeAsync() : ValueTask.CompletedTask;

    private async Task<ModelVersion> GetVersionAsync(string model, int version, CancellationToken cancellationToken)
    {
        var row = await Connection.QuerySingleOrDefaultAsync<VersionRow>(Command(SqliteRegistrySql.Version, new { model, version }, null, cancellationToken));
        return row?.ToModelVersion() ?? throw await VersionNotFoundAsync(model, version, cancellationToken);
    }

    private async Task<ModelAsDataException> VersionNotFoundAsync(string model, int version, CancellationToken cancellationToken)
    {
        await EnsureModelExistsAsync(model, cancellationToken);
        return SqliteRegistryMessages.NoSuchVersion(model, version, await VersionStatusesAsync(model, cancellationToken));
    }

    internal async Task<List<(long Version, string Status)>> VersionStatusesAsync(string model, CancellationToken cancellationToken) =>
        (await Connection.QueryAsync<(long Version, string Status)>(Command(SqliteRegistrySql.VersionStatuses, new { model }, null, cancellationToken))).ToList();

    private async Task EnsureModelExistsAsync(string model, CancellationToken cancellationToken)
    {
        var models = (await Connection.QueryAsync<string>(Command(SqliteRegistrySql.ModelNames, null, null, cancellationToken))).ToList();
        if (!models.Contains(model))
        {
            throw SqliteRegistryMessages.NoSuchModel(model, models);
        }
    }

    private Task<int> Execute(string sql, object parameters, SqliteTransaction transaction, CancellationToken cancellationToken) =>
        Connection.ExecuteAsync(Command(sql, parameters, transaction, cancellationToken));

    private CommandDefinition Command(string sql, object? parameters, SqliteTransaction? transaction, CancellationToken cancellationToken) =>
        new(sql, parameters, transaction ?? SqliteDatabase.OpenTransaction(Connection), cancellationToken: cancellationToken);

    private sealed record AliasRow(string Model, string Alias, long Version);

    /// <summary>
    /// Settable properties, not a positional record: with no rows, SQLite reports the computed columns as BLOBs, and
    /// Dapper, which picks a constructor by the reported types before reading, would find none.
    /// </summary>
    private sealed class SummaryRow
    {
        public string Model { get; init; } = "";

        public long Versions { get; init; }

        public long? LatestReady { get; init; }

        public string UpdatedAt { get; init; } = "";
    }

    private sealed record VersionRow(string Model, long Version, string Sha256, long SizeBytes, string Status, string? Reason, string? Signature, string Metadata, string CreatedBy, string CreatedAt)
    {
        public ModelVersion ToModelVersion() => new(
            Model,
            (int)Version,
            Sha256,
            SizeBytes,
            Enum.Parse<VersionStatus>(Status, ignoreCase: true),
            Reason,
            Signature is null ? null : ModelSignature.FromJson(Signature),
            JsonNode.Parse(Metadata) as JsonObject ?? [],
            CreatedBy,
            SqliteTime.Parse(CreatedAt));
    }
}

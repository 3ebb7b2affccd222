using System.Data;
using System.Security.Cryptography;
using System.Text.Json;
using Dapper;
using Microsoft.Data.Sqlite;
using ModelAsData.Core;
using ModelAsData.Core.Onnx;
using ModelAsData.Core.Registry;
using ModelAsData.Postgres;
using ModelAsData.Sqlite;
using Npgsql;

namespace ModelAsData.Sync;

/// <summary>What a pull takes: the model references to copy (none: every model) and the device's id for mad.devices.</summary>
public sealed record PullOptions
{
    /// <summary>References as users write them: <c>churn</c> (its aliases and newest ready version), <c>churn@production</c>, <c>churn@7</c>.</summary>
    public IReadOnlyList<string> Models { get; init; } = [];

    /// <summary>The device id recorded centrally (default: the one the file holds; none: no bookkeeping).</summary>
    public string? Device { get; init; }

    /// <summary>Runs inside the device file's transaction, just before it commits (a test holds a pull open here to kill it).</summary>
    public Func<CancellationToken, Task>? BeforeCommit { get; init; }
}

/// <summary>What a pull changed in the device file (baselines: the (version, kind) profiles written because they differed).</summary>
public sealed record PullResult(int VersionsCopied, int AliasesChanged, int DeploymentsChanged, IReadOnlyList<string> Versions, int BaselinesChanged = 0);

/// <summary>
/// Edge sync (docs/SYNC.md). A pull reads the central registry in one REPEATABLE READ snapshot, verifies every
/// version's bytes against its sha256, and only then writes the device file in ONE SQLite transaction: a pull killed
/// or failing at any point leaves the file as it was. A push sends the device's prediction-table rows in one
/// PostgreSQL transaction, so a refused push adds nothing. A lock file beside the device file keeps two syncs of one
/// file apart.
/// </summary>
public static partial class ModelSync
{
    public static async Task<PullResult> PullAsync(string central, string devicePath, PullOptions? options = null, CancellationToken cancellationToken = default)
    {
        options ??= new PullOptions();
        using var syncLock = SyncLock.Take(devicePath);
        await using var device = await OpenDeviceAsync(devicePath, cancellationToken);
        var held = (await device.QueryAsync<(string Model, long Version, string Sha256)>(new CommandDefinition(
            "SELECT model, version, sha256 FROM mad_model_versions", cancellationToken: cancellationToken)))
            .ToDictionary(v => (v.Model, (int)v.Version), v => v.Sha256);

        await using var dataSource = PostgresDataSource.Create(central, "mad sync pull");
        Snapshot snapshot;
        try
        {
            snapshot = await ReadCentralAsync(dataSource, options.Models, held, cancellationToken);
        }
        catch (ModelAsDataException e) when (e.InnerException is NpgsqlException { IsTransient: true } or PostgresException { SqlState: ['0', '8', ..] or ['5', '7', 'P', ..] })
        {
            // Lost while reading (dropped, terminated, server shut down): nothing of the pull reached the file yet.
            throw new ModelAsDataException(ErrorCode.Database,
                $"The connection to the central database was lost while the pull read it ({e.Message}); the device file {devicePath} was not changed. Run the pull again.", e);
        }


        var result = await WriteDeviceAsync(device, snapshot, options, cancellationToken);

        var deviceId = options.Device ?? await device.QuerySingleOrDefaultAsync<string?>("SELECT id FROM mad_device");
        if (deviceId is not null)
        {
            var versions = JsonSerializer.Serialize(snapshot.Versions.Select(v => new { model = v.Model, version = v.Version }));
            await RunCentralAsync(dataSource, async () =>
            {
                await using var connection = await dataSource.OpenConnectionAsync(cancellationToken);
                await connection.ExecuteAsync(new CommandDefinition("SELECT mad.record_pull(@deviceId, @versions::jsonb)", new { deviceId, versions }, cancellationToken: cancellationToken));
            });
        }

        return result;
    }

    private sealed record CentralModel(string Name, int LastVersion, string CreatedBy, DateTime CreatedAt, DateTime UpdatedAt);

    private sealed record CentralVersion(string Model, int Version, string Sha256, long SizeBytes, string Status, string? Reason, string? Signature,
        string Metadata, string CreatedBy, DateTime CreatedAt, string? ValidatedBy, DateTime? ValidatedAt, int Chunks)
    {
        public byte[]? Onnx { get; set; }

        /// <summary>Its central baselines (mad.device_baselines), so the device counts drift into the central bins.</summary>
        public List<DeviceBaselines.Central> Baselines { get; set; } = [];
    }

    private sealed record CentralAlias(string Model, string Alias, int Version, string UpdatedBy, DateTime UpdatedAt);

    private sealed record CentralDeployment(string Model, string Alias, long Seed, int? CanaryVersion, double? CanaryPercent, int? ShadowVersion,
        double? ShadowPercent, string UpdatedBy, DateTime UpdatedAt);

    private sealed record Snapshot(List<CentralModel> Models, List<CentralVersion> Versions, List<CentralAlias> Aliases,
        List<CentralDeployment> Deployments, HashSet<(string Model, string Alias)> Selected);

    private static async Task<Snapshot> ReadCentralAsync(NpgsqlDataSource dataSource, IReadOnlyList<string> references,
        Dictionary<(string, int), string> held, CancellationToken cancellationToken) =>
        await RunCentralAsync(dataSource, async () =>
        {
            await using var connection = await dataSource.OpenConnectionAsync(cancellationToken);
            // One snapshot: the aliases, deployments and versions read agree with each other.
            await using var transaction = await connection.BeginTransactionAsync(IsolationLevel.RepeatableRead, cancellationToken);
            var parsed = references.Select(ModelReference.Parse).ToList();
            var modelNames = parsed.Count == 0
                ? (await connection.QueryAsync<string>(new CommandDefinition("SELECT name FROM mad.models ORDER BY name", transaction: transaction, cancellationToken: cancellationToken))).ToList()
                : parsed.Select(p => p.Model).Distinct().ToList();

            var models = (await connection.QueryAsync<CentralModel>(new CommandDefinition(SyncSql.CentralModels, new { names = modelNames.ToArray() }, transaction, cancellationToken: cancellationToken))).ToList();
            var missing = modelNames.Except(models.Select(m => m.Name)).ToList();
            if (missing.Count > 0)
            {
                throw new ModelAsDataException(ErrorCode.NotFound,
                    $"The central database has no model {string.Join(", ", missing.Select(m => $"'{m}'"))}; it has {string.Join(", ", (await connection.QueryAsync<string>(new CommandDefinition("SELECT name FROM mad.models ORDER BY name", transaction: transaction, cancellationToken: cancellationToken))).Select(n => $"'{n}'"))}.");
            }

            var aliases = (await connection.QueryAsync<CentralAlias>(new CommandDefinition(SyncSql.CentralAliases, new { names = modelNames.ToArray() }, transaction, cancellationToken: cancellationToken))).ToList();
            var deployments = (await connection.QueryAsync<CentralDeployment>(new CommandDefinition(SyncSql.CentralDeployments, new { names = modelNames.ToArray() }, transaction, cancellationToken: cancellationToken))).ToList();

            // What each reference brings: a bare model all its aliases and its newest ready version; an alias itself;
            // a version number that version. Every alias brings its deployment's canary and shadow versions.
            var selected = new HashSet<(string, string)>();
            var wanted = new HashSet<(string Model, int Version)>();
            foreach (var model in modelNames)
            {
                var forModel = parsed.Count == 0 ? [new ModelReference(model, null, null)] : parsed.Where(p => p.Model == model).ToList();
                foreach (var reference in forModel)
                {
                    if (reference.Version is { } v)
                    {
                        wanted.Add((model, v));
                        continue;
                    }

                    var its = aliases.Where(a => a.Model == model && (reference.Alias is null || a.Alias == reference.Alias)).ToList();
                    if (reference.Alias is { } alias && its.Count == 0)
                    {
                        throw new ModelAsDataException(ErrorCode.NotFound,
                            $"Model '{model}' has no alias '{alias}' in the central database; its aliases are {string.Join(", ", aliases.Where(a => a.Model == model).Select(a => $"{a.Alias} -> {a.Version}").DefaultIfEmpty("none"))}.");
                    }

                    if (reference.Alias is null)
                    {
                        var newest = await connection.QuerySingleOrDefaultAsync<int?>(new CommandDefinition(
                            "SELECT max(version) FROM mad.model_versions WHERE model = @model AND status = 'ready'", new { model }, transaction, cancellationToken: cancellationToken));
                        if (newest is { } n)
                        {
                            wanted.Add((model, n));
                        }
                    }

                    foreach (var a in its)
                    {
                        selected.Add((a.Model, a.Alias));
                        wanted.Add((a.Model, a.Version));
                        if (deployments.FirstOrDefault(d => d.Model == a.Model && d.Alias == a.Alias) is { } d)
                        {
                            if (d.CanaryVersion is { } c) wanted.Add((a.Model, c));
                            if (d.ShadowVersion is { } s) wanted.Add((a.Model, s));
                        }
                    }
                }
            }

            var versions = new List<CentralVersion>();
            foreach (var (model, version) in wanted.OrderBy(w => w.Model, StringComparer.Ordinal).ThenBy(w => w.Version))
            {
                var row = await connection.QuerySingleOrDefaultAsync<CentralVersion>(new CommandDefinition(SyncSql.CentralVersion, new { model, version }, transaction, cancellationToken: cancellationToken))
                    ?? throw new ModelAsDataException(ErrorCode.NotFound, $"Model '{model}' has no version {version} in the central database.");
                if (row.Status != "ready")
                {
                    throw new ModelAsDataException(ErrorCode.NotReady,
                        $"Model '{model}' version {version} is {row.Status} in the central database{(row.Reason is null ? "" : $" ({row.Reason})")}: only ready versions go to devices.");
                }

                if (held.TryGetValue((model, version), out var heldSha))
                {
                    if (heldSha != row.Sha256)
                    {
                        throw new ModelAsDataException(ErrorCode.Conflict,
                            $"The device file holds model '{model}' version {version} with other bytes (sha256 {heldSha[..12]}…) than the central database ({row.Sha256[..12]}…): it was pushed on the device. Pull into a fresh file.");
                    }

                    versions.Add(row); // held already: its bytes stay as they are
                    continue;
                }

                var onnx = row.Chunks == 0
                    ? await connection.QuerySingleAsync<byte[]>(new CommandDefinition(SyncSql.CentralBytes, new { model, version }, transaction, cancellationToken: cancellationToken))
                    : await CentralChunksAsync(connection, transaction, row, cancellationToken);
                var actual = Convert.ToHexStringLower(SHA256.HashData(onnx));
                if (actual != row.Sha256)
                {
                    throw new ModelAsDataException(ErrorCode.InvalidModel,
                        $"Model '{model}' version {version}: its bytes hash to sha256 {actual[..12]}…, but the registry says {row.Sha256[..12]}…; nothing was copied.");
                }

                RequireLoadable(row, onnx);
                row.Onnx = onnx;
                versions.Add(row);
            }

            foreach (var v in versions)
            {
                v.Baselines = await DeviceBaselines.ReadCentralAsync(connection, transaction, v.Model, v.Version, cancellationToken);
            }

            await transaction.CommitAsync(cancellationToken);
            return new Snapshot(models, versions, aliases.Where(a => selected.Contains((a.Model, a.Alias))).ToList(),
                deployments.Where(d => selected.Contains((d.Model, d.Alias))).ToList(), selected);
        });

    /// <summary>
    /// The device scores with its own ONNX Runtime, which may be older than the central sidecar's: a version it
    /// cannot load is refused before anything is written. The loaded model stays in the process's cache for scoring.
    /// </summary>
    private static void RequireLoadable(CentralVersion version, byte[] onnx)
    {
        try
        {
            ModelCache.Shared.GetOrLoad(version.Sha256, () => onnx);
        }
        catch (ModelAsDataException e) when (e.Code == ErrorCode.InvalidModel)
        {
            throw new ModelAsDataException(ErrorCode.InvalidModel,
                $"Model '{version.Model}' version {version.Version} is ready centrally, but this device's ONNX Runtime cannot load it ({e.Message}); nothing was copied. " +
                "Upgrade mad on the device, or pull a version it can load.", e);
        }
    }

    /// <summary>A chunked central version (030), chunk by chunk into one array of its size.</summary>
    private static async Task<byte[]> CentralChunksAsync(NpgsqlConnection connection, NpgsqlTransaction transaction, CentralVersion row, CancellationToken cancellationToken)
    {
        var bytes = ModelChunks.Allocate(row.Model, row.Version, row.SizeBytes);
        var offset = 0;
        for (var n = 0; n < row.Chunks; n++)
        {
            var chunk = await connection.QuerySingleAsync<byte[]>(new CommandDefinition(SyncSql.CentralChunk, new { model = row.Model, version = row.Version, n }, transaction, cancellationToken: cancellationToken));
            if (chunk.Length > bytes.Length - offset)
            {
                throw ModelChunks.Corrupt(row.Model, row.Version, $"its chunk {n} ends past its {row.SizeBytes:N0} bytes");
            }

            chunk.CopyTo(bytes, offset);
            offset += chunk.Length;
        }

        return bytes;
    }

    private static async Task<PullResult> WriteDeviceAsync(SqliteConnection device, Snapshot snapshot, PullOptions options, CancellationToken cancellationToken)
    {
        // BEGIN IMMEDIATE: the file's write lock for the whole copy; SQLite's journal undoes it all if the process dies.
        using var transaction = device.BeginTransaction(deferred: false);
        var now = SyncTime.Now();
        foreach (var m in snapshot.Models)
        {
            await device.ExecuteAsync(new CommandDefinition(SyncSql.DeviceModel,
                new { m.Name, m.LastVersion, m.CreatedBy, createdAt = SyncTime.Text(m.CreatedAt), updatedAt = SyncTime.Text(m.UpdatedAt) }, transaction, cancellationToken: cancellationToken));
        }

        var copied = 0;
        foreach (var v in snapshot.Versions.Where(v => v.Onnx is not null))
        {
            var chunks = SqliteVersionBytes.ChunksFor(v.Onnx!.LongLength);
            await device.ExecuteAsync(new CommandDefinition(SyncSql.DeviceVersion, new
            {
                v.Model, v.Version, Onnx = chunks == 0 ? v.Onnx : Array.Empty<byte>(), Chunks = chunks, v.Sha256, v.SizeBytes, v.Status, v.Reason, v.Signature, v.Metadata, v.CreatedBy,
                createdAt = SyncTime.Text(v.CreatedAt), v.ValidatedBy, validatedAt = v.ValidatedAt is { } at ? SyncTime.Text(at) : null,
            }, transaction, cancellationToken: cancellationToken));
            if (chunks > 0)
            {
                // Larger than one SQLite value may hold (1 GB) or than one chunk: chunked on the device too (017).
                await SqliteVersionBytes.WriteChunksAsync(device, transaction, v.Model, v.Version, v.Onnx, cancellationToken: cancellationToken);
            }

            copied++;
        }

        var baselinesChanged = 0;
        foreach (var v in snapshot.Versions)
        {
            baselinesChanged += await DeviceBaselines.WriteAsync(device, transaction, v.Model, v.Version, v.Baselines, cancellationToken);
        }

        var aliasesChanged = 0;
        foreach (var a in snapshot.Aliases)
        {
            var current = await device.QuerySingleOrDefaultAsync<long?>(new CommandDefinition(
                "SELECT version FROM mad_aliases WHERE model = @Model AND alias = @Alias", a, transaction, cancellationToken: cancellationToken));
            if (current == a.Version)
            {
                continue;
            }

            await device.ExecuteAsync(new CommandDefinition(SyncSql.DeviceAlias,
                new { a.Model, a.Alias, a.Version, a.UpdatedBy, updatedAt = SyncTime.Text(a.UpdatedAt), from = current, now }, transaction, cancellationToken: cancellationToken));
            aliasesChanged++;
        }

        var deploymentsChanged = 0;
        foreach (var (model, alias) in snapshot.Selected)
        {
            var local = await device.QuerySingleOrDefaultAsync<(long Seed, long? CanaryVersion, double? CanaryPercent, long? ShadowVersion, double? ShadowPercent)?>(new CommandDefinition(
                "SELECT seed, canary_version, canary_percent, shadow_version, shadow_percent FROM mad_deployments WHERE model = @model AND alias = @alias",
                new { model, alias }, transaction, cancellationToken: cancellationToken));
            var wanted = snapshot.Deployments.FirstOrDefault(d => d.Model == model && d.Alias == alias);
            if (wanted is null)
            {
                if (local is not null)
                {
                    await device.ExecuteAsync(new CommandDefinition("DELETE FROM mad_deployments WHERE model = @model AND alias = @alias", new { model, alias }, transaction, cancellationToken: cancellationToken));
                    deploymentsChanged++;
                }

                continue;
            }

            if (local is { } l && l.Seed == wanted.Seed && l.CanaryVersion == wanted.CanaryVersion && l.CanaryPercent == wanted.CanaryPercent
                && l.ShadowVersion == wanted.ShadowVersion && l.ShadowPercent == wanted.ShadowPercent)
            {
                continue;
            }

            var version = snapshot.Aliases.First(a => a.Model == model && a.Alias == alias).Version;
            await device.ExecuteAsync(new CommandDefinition(SyncSql.DeviceDeployment, new
            {
                wanted.Model, wanted.Alias, wanted.Seed, wanted.CanaryVersion, wanted.CanaryPercent, wanted.ShadowVersion, wanted.ShadowPercent,
                wanted.UpdatedBy, updatedAt = SyncTime.Text(wanted.UpdatedAt), version, now,
            }, transaction, cancellationToken: cancellationToken));
            deploymentsChanged++;
        }

        await device.ExecuteAsync(new CommandDefinition(SyncSql.DevicePulled, new { id = options.Device, now }, transaction, cancellationToken: cancellationToken));
        if (options.BeforeCommit is { } hold)
        {
            await hold(cancellationToken);
        }

        await transaction.CommitAsync(cancellationToken);
        return new PullResult(copied, aliasesChanged, deploymentsChanged, snapshot.Versions.Select(v => $"{v.Model}@{v.Version}").ToList(), baselinesChanged);
    }

    /// <summary>
    /// Opens the device file, refusing one made by a newer build (migrations this build does not know), and brings an
    /// older one up to this build's schema.
    /// </summary>
    private static async Task<SqliteConnection> OpenDeviceAsync(string path, CancellationToken cancellationToken)
    {
        var connection = await SqliteDatabase.OpenAsync(path, cancellationToken);
        try
        {
            var hasMigrations = await connection.ExecuteScalarAsync<long>(
                "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'mad_schema_migrations'") > 0;
            if (hasMigrations)
            {
                var known = SqliteMigrator.ScriptNames.ToHashSet(StringComparer.Ordinal);
                var unknown = (await connection.QueryAsync<string>("SELECT name FROM mad_schema_migrations ORDER BY name")).Where(n => !known.Contains(n)).ToList();
                if (unknown.Count > 0)
                {
                    throw new ModelAsDataException(ErrorCode.Conflict,
                        $"The device file {path} has schema migrations this mad does not know ({string.Join(", ", unknown)}): it was made by a newer version. Upgrade mad on this machine; nothing was changed.");
                }
            }

            await SqliteMigrator.MigrateAsync(connection, cancellationToken);
            return connection;
        }
        catch
        {
            await connection.DisposeAsync();
            throw;
        }
    }

    private static async Task<T> RunCentralAsync<T>(NpgsqlDataSource dataSource, Func<Task<T>> action)
    {
        try
        {
            return await action();
        }
        catch (Exception e) when (PostgresErrors.CanMap(e))
        {
            throw PostgresErrors.Map(e, dataSource);
        }
    }

    private static Task RunCentralAsync(NpgsqlDataSource dataSource, Func<Task> action) =>
        RunCentralAsync(dataSource, async () =>
        {
            await action();
            return 0;
        });
}

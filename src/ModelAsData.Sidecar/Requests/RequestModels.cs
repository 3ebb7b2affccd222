using System.Collections.Concurrent;
using Dapper;
using ModelAsData.Core;
using ModelAsData.Core.Onnx;
using ModelAsData.Postgres;
using Npgsql;

namespace ModelAsData.Sidecar.Requests;

/// <summary>
/// The versions online scoring uses, loaded from their blobs into a set of at most
/// <see cref="SidecarOptions.MaxLoadedVersions"/> (<see cref="LoadedVersions"/>: the least recently used goes, and is
/// loaded again if asked for), each with a pool of one-row scorers so that HTTP requests on several threads never
/// share one. References (<c>iris@production</c>) are resolved
/// through <c>mad.resolve</c> and cached until a <c>mad_models</c> notification or a reconnect says the registry may
/// have moved (<see cref="ForgetReferences"/>). Thread-safe; owns the loaded models.
/// </summary>
public sealed class RequestModels : IDisposable
{
    private readonly NpgsqlDataSource _dataSource;
    private readonly ScoringOptions _scoring;
    private readonly RequestMetrics _metrics;
    private readonly LoadedVersions _versions;
    private ConcurrentDictionary<string, (string Model, int Version)> _references = new(StringComparer.Ordinal);

    public RequestModels(NpgsqlDataSource dataSource, SidecarOptions options, RequestMetrics metrics)
    {
        _dataSource = dataSource;
        _scoring = options.Scoring;
        _metrics = metrics;
        _versions = new LoadedVersions(options.MaxLoadedVersions, metrics);
    }

    /// <summary>The version a reference points at now; throws <see cref="ModelAsDataException"/> (NotFound, NotReady…) with the registry's message.</summary>
    public async ValueTask<(string Model, int Version)> ResolveAsync(string reference, CancellationToken cancellationToken)
    {
        if (_references.TryGetValue(reference, out var known))
        {
            return known;
        }

        var parsed = ModelReference.Parse(reference);
        var target = parsed.Version?.ToString(System.Globalization.CultureInfo.InvariantCulture) ?? parsed.Alias;
        var references = _references;
        try
        {
            await using var connection = await _dataSource.OpenConnectionAsync(cancellationToken);
            var version = await connection.ExecuteScalarAsync<int>(new CommandDefinition(RequestSql.Resolve, new { model = parsed.Model, target }, cancellationToken: cancellationToken));
            var resolved = (parsed.Model, version);
            references.TryAdd(reference, resolved);
            return resolved;
        }
        catch (Exception e) when (PostgresErrors.CanMap(e))
        {
            throw PostgresErrors.Map(e, _dataSource);
        }
    }

    /// <summary>Drops resolved references and deployments: an alias may have moved, a canary started or ended.</summary>
    public void ForgetReferences()
    {
        _references = new(StringComparer.Ordinal);
        _canaries = new(StringComparer.Ordinal);
        _shadows = new(StringComparer.Ordinal);
    }

    private ConcurrentDictionary<string, (int Version, double Percent, long Seed)?> _shadows = new(StringComparer.Ordinal);

    /// <summary>
    /// The shadow version that samples an online prediction through the reference's deployment (025), or null: by the
    /// key's bucket when a key is given, else a random draw at the shadow's percent; a reference to a version never is.
    /// </summary>
    public async ValueTask<int?> ShadowAsync(string reference, string model, string? keyText, CancellationToken cancellationToken)
    {
        var parsed = ModelReference.Parse(reference);
        if (parsed.Version is not null)
        {
            return null;
        }

        var shadows = _shadows;
        if (!shadows.TryGetValue(reference, out var shadow))
        {
            try
            {
                await using var connection = await _dataSource.OpenConnectionAsync(cancellationToken);
                shadow = await connection.QuerySingleOrDefaultAsync<(int, double, long)?>(new CommandDefinition(RequestSql.Shadow,
                    new { model, alias = parsed.Alias ?? "production" }, cancellationToken: cancellationToken));
                shadows.TryAdd(reference, shadow);
            }
            catch (Exception e) when (PostgresErrors.CanMap(e))
            {
                throw PostgresErrors.Map(e, _dataSource);
            }
        }

        if (shadow is not { } s)
        {
            return null;
        }

        var sampled = keyText is null ? Random.Shared.NextDouble() < s.Percent / 100 : Core.Deployments.StickyBucket.InCanary(s.Seed, keyText, s.Percent);
        return sampled ? s.Version : null;
    }

    private ConcurrentDictionary<string, (int Version, double Percent, long Seed)?> _canaries = new(StringComparer.Ordinal);

    /// <summary>
    /// The version and arm the reference's deployment serves (docs/DEPLOYMENTS.md): by the key's bucket when a key is
    /// given, else a random draw at the canary's percent; a reference to a version is never routed.
    /// </summary>
    public async ValueTask<(int Version, string Arm)> RouteAsync(string reference, string model, int champion, string? keyText, CancellationToken cancellationToken)
    {
        var parsed = ModelReference.Parse(reference);
        if (parsed.Version is not null)
        {
            return (champion, Core.Deployments.Arms.Champion);
        }

        var canaries = _canaries;
        if (!canaries.TryGetValue(reference, out var canary))
        {
            try
            {
                await using var connection = await _dataSource.OpenConnectionAsync(cancellationToken);
                var row = await connection.QuerySingleOrDefaultAsync<(int, double, long)?>(new CommandDefinition(RequestSql.Canary,
                    new { model, alias = parsed.Alias ?? "production" }, cancellationToken: cancellationToken));
                canary = row;
                canaries.TryAdd(reference, canary);
            }
            catch (Exception e) when (PostgresErrors.CanMap(e))
            {
                throw PostgresErrors.Map(e, _dataSource);
            }
        }

        if (canary is not { } c)
        {
            return (champion, Core.Deployments.Arms.Champion);
        }

        var inCanary = keyText is null ? Random.Shared.NextDouble() < c.Percent / 100 : Core.Deployments.StickyBucket.InCanary(c.Seed, keyText, c.Percent);
        return inCanary ? (c.Version, Core.Deployments.Arms.Canary) : (champion, Core.Deployments.Arms.Champion);
    }

    /// <summary>A loaded, ready version, held until the lease is disposed; loads it from its blob when it is not in the set.</summary>
    public ValueTask<VersionLease> AcquireAsync(string model, int version, CancellationToken cancellationToken) =>
        _versions.AcquireAsync(model, version, () => LoadAsync(model, version), cancellationToken);

    public void Dispose() => _versions.Dispose();

    private async Task<RequestVersion> LoadAsync(string model, int version)
    {
        OnnxModel onnx;
        try
        {
            await using var connection = await _dataSource.OpenConnectionAsync();
            var stored = await connection.QuerySingleOrDefaultAsync<StoredVersion>(RequestSql.LoadVersion, new { model, version })
                ?? throw new ModelAsDataException(ErrorCode.NotFound, $"Model '{model}' has no version {version}.");
            if (stored.Status != "ready")
            {
                throw new ModelAsDataException(ErrorCode.NotReady, $"{model}@{version} is {stored.Status}: only ready versions can score.");
            }

            // Checked against its sha256; a large model through a temporary file ONNX Runtime reads by its path.
            onnx = await Postgres.Registry.PostgresVersionBytes.LoadAsync(connection, model, version, _scoring);
        }
        catch (Exception e) when (PostgresErrors.CanMap(e))
        {
            throw PostgresErrors.Map(e, _dataSource);
        }

        _metrics.ModelLoads.WithLabels(model).Inc();
        return new RequestVersion(model, version, onnx);
    }

    private sealed class StoredVersion
    {
        public string Sha256 { get; set; } = "";

        public string Status { get; set; } = "";
    }
}

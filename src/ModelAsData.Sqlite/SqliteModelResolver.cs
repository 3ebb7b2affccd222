using System.Diagnostics;
using Microsoft.Data.Sqlite;
using ModelAsData.Core;
using ModelAsData.Core.Onnx;
using ModelAsData.Core.Registry;
using SQLitePCL;

namespace ModelAsData.Sqlite;

/// <summary>
/// Resolves model references for the SQL functions of one connection and keeps, per reference, the loaded model and
/// a one-row scorer, so that a query calling <c>predict()</c> a million times resolves and loads once. The cache is
/// dropped when this connection changes anything, and when another connection's commit is seen (checked at most
/// every <see cref="RecheckInterval"/>; inside one statement SQLite's snapshot does not move anyway).
/// </summary>
internal sealed class SqliteModelResolver : IDisposable
{
    private static readonly long s_recheckTicks = (long)(RecheckInterval.TotalSeconds * Stopwatch.Frequency);
    private readonly Dictionary<string, ResolvedModel> _resolved = new(StringComparer.Ordinal);
    private readonly Dictionary<string, Core.Deployments.Deployment?> _deployments = new(StringComparer.Ordinal);
    private readonly SqliteModelRegistry _registry;
    private readonly ModelCache _cache;
    private readonly SqliteCommand _dataVersion;
    private long _changes = -1;
    private long _version = -1;
    private long _checkedAt;

    public SqliteModelResolver(SqliteConnection connection, ModelCache cache)
    {
        _registry = new SqliteModelRegistry(connection, cache);
        _cache = cache;
        _dataVersion = connection.CreateCommand();
        _dataVersion.CommandText = "PRAGMA data_version";
    }

    /// <summary>How stale an alias move made by another process may look to a running connection.</summary>
    public static TimeSpan RecheckInterval { get; } = TimeSpan.FromMilliseconds(100);

    public ResolvedModel Get(string reference)
    {
        DropIfChanged();
        if (!_resolved.TryGetValue(reference, out var resolved))
        {
            resolved = Resolve(reference);
            _resolved[reference] = resolved;
        }

        return resolved;
    }

    /// <summary>
    /// The version the reference's deployment serves this key (docs/DEPLOYMENTS.md): the canary's when its bucket holds
    /// the key, else the reference's own. Deployments are cached and dropped with the resolved models.
    /// </summary>
    public ResolvedModel GetFor(string reference, string keyText)
    {
        DropIfChanged();
        if (!_deployments.TryGetValue(reference, out var deployment))
        {
            deployment = new SqliteDeployments(_registry).ServingAsync(ModelReference.Parse(reference), CancellationToken.None).GetAwaiter().GetResult();
            _deployments[reference] = deployment;
        }

        return deployment is { CanaryVersion: { } canary } && deployment.ArmOf(keyText) == Core.Deployments.Arms.Canary
            ? Get($"{deployment.Model}@{canary}")
            : Get(reference);
    }

    public void Dispose()
    {
        Clear();
        _dataVersion.Dispose();
    }

    private ResolvedModel Resolve(string reference)
    {
        var parsed = ModelReference.Parse(reference);
        // A SQL function is called synchronously; Microsoft.Data.Sqlite's async methods complete synchronously too.
        var version = _registry.ResolveAsync(parsed).GetAwaiter().GetResult();
        if (version.Status != VersionStatus.Ready)
        {
            throw SqliteRegistryMessages.NotReadyToScore(version);
        }

        var model = _registry.LoadModel(version, _cache);
        return new ResolvedModel(version, model, model.CreateScorer(1));
    }

    private void DropIfChanged()
    {
        var changes = raw.sqlite3_total_changes(_registry.Connection.Handle);
        var now = Stopwatch.GetTimestamp();
        if (changes != _changes)
        {
            Clear();
            _changes = changes;
        }

        if (now - _checkedAt > s_recheckTicks)
        {
            _checkedAt = now;
            _dataVersion.Transaction = SqliteDatabase.OpenTransaction(_registry.Connection);
            var version = (long)_dataVersion.ExecuteScalar()!;
            if (version != _version)
            {
                Clear();
                _version = version;
            }
        }
    }

    private void Clear()
    {
        foreach (var resolved in _resolved.Values)
        {
            resolved.Scorer.Dispose();
        }

        _resolved.Clear();
        _deployments.Clear();
    }

    /// <summary>A reference resolved to a ready version, its loaded model and a scorer for one row.</summary>
    internal sealed record ResolvedModel(ModelVersion Version, OnnxModel Model, ModelScorer Scorer);
}

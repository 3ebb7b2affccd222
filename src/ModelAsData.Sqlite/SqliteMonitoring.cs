using System.Globalization;
using System.Text.Json;
using Dapper;
using Microsoft.Data.Sqlite;
using ModelAsData.Core;
using ModelAsData.Core.Monitoring;
using ModelAsData.Core.Onnx;
using ModelAsData.Core.Registry;

namespace ModelAsData.Sqlite;

/// <summary>
/// Drift monitoring in the embedded store: baselines profiled in-process by the rules of mad.set_baseline
/// (<see cref="ProfileBuilder"/>), outputs scored in-process, drift computed with <see cref="DriftEvaluator"/> from
/// mad_profile_counts, in mad.drift's windows and rows (sql/sqlite/005_drift.sql). Not thread-safe (one connection).
/// </summary>
public sealed partial class SqliteMonitoring(SqliteModelRegistry registry, ModelCache? cache = null) : IMonitoring
{
    private readonly ModelCache _cache = cache ?? ModelCache.Shared;

    private SqliteConnection Connection => registry.Connection;

    public async Task<BaselineSummary> SetBaselineAsync(string model, int version, string source, string? bins, CancellationToken cancellationToken = default)
    {
        var found = await registry.ResolveAsync(ModelReference.Parse($"{model}@{version}"), cancellationToken);
        if (found.Status != VersionStatus.Ready)
        {
            throw SqliteRegistryMessages.NotReadyToScore(found);
        }

        var onnx = registry.LoadModel(found, _cache, cancellationToken);
        var given = ProfileBuilder.ParseBins(bins);
        var sourceColumns = (await Connection.QueryAsync<string>(new CommandDefinition("SELECT name FROM pragma_table_info(@source)", new { source }, cancellationToken: cancellationToken))).ToList();
        if (sourceColumns.Count == 0)
        {
            throw new ModelAsDataException(ErrorCode.NotFound, $"No table or view '{source}' to take a baseline from.");
        }

        var bound = (await Connection.QueryAsync<(string Features, string FeatureColumns)>(new CommandDefinition(
            "SELECT features, feature_columns FROM mad_prediction_tables WHERE model = @model OR model LIKE @prefix ORDER BY created_at",
            new { model, prefix = model + "@%" }, cancellationToken: cancellationToken))).ToList();
        var mapping = FeatureMapping.Resolve(onnx.Signature, model, bound.Count > 0 ? FeatureMapping.Parse(bound[0].Features) : null, source,
            sourceColumns.Where(c => true).ToList());
        var wanted = bound.Count > 0
            ? bound.SelectMany(b => JsonSerializer.Deserialize<string[]>(b.FeatureColumns)!).Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal).ToList()
            : mapping.SlotColumns.Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal).ToList();
        var missing = wanted.Where(w => !sourceColumns.Contains(w, StringComparer.OrdinalIgnoreCase)).ToList();
        if (missing.Count > 0)
        {
            throw new ModelAsDataException(ErrorCode.FeatureMismatch,
                $"The baseline {source} has no column {string.Join(", ", missing)} that model {model}@{version} reads (its prediction tables map it from {string.Join(", ", wanted)}). " +
                $"Columns: {string.Join(", ", sourceColumns)}. Give a table or view with those columns, e.g. a view that renames them.");
        }

        var outputNames = onnx.Signature.Columns.Select(c => c.Name).ToHashSet(StringComparer.Ordinal);
        if (given.Keys.FirstOrDefault(k => !wanted.Contains(k) && !outputNames.Contains(k)) is { } unknown)
        {
            throw new ModelAsDataException(ErrorCode.InvalidArgument, $"The bins name '{unknown}', which the baseline does not profile; its columns: {string.Join(", ", wanted.Concat(outputNames))}.");
        }

        var read = wanted.Concat(mapping.SlotColumns).Distinct(StringComparer.OrdinalIgnoreCase).ToList();
        var slotOrdinals = mapping.SlotColumns.Select(c => read.FindIndex(r => string.Equals(r, c, StringComparison.OrdinalIgnoreCase))).ToArray();
        var inputs = wanted.Select(w => new ProfileBuilder(w, ProfileKind.Input)).ToArray();
        using var profiler = new OutputProfiler(onnx);
        long rows = 0;
        await using (var command = Connection.CreateCommand())
        {
            command.CommandText = $"SELECT {string.Join(", ", read.Select(SqliteDatabase.Quote))} FROM {SqliteDatabase.Quote(source)}";
            await using var reader = await command.ExecuteReaderAsync(cancellationToken);
            var slots = new object?[slotOrdinals.Length];
            while (await reader.ReadAsync(cancellationToken))
            {
                for (var i = 0; i < inputs.Length; i++)
                {
                    switch (reader.IsDBNull(i) ? null : reader.GetValue(i))
                    {
                        case null: inputs[i].AddNull(); break;
                        case long l: inputs[i].Add(l, whole: true); break;
                        case double d: inputs[i].Add(d, whole: false); break;
                        case string s: inputs[i].Add(s); break;
                        case var other: inputs[i].Add(Convert.ToString(other, CultureInfo.InvariantCulture) ?? ""); break;
                    }
                }

                for (var s = 0; s < slots.Length; s++)
                {
                    slots[s] = reader.IsDBNull(slotOrdinals[s]) ? null : reader.GetValue(slotOrdinals[s]);
                }

                profiler.Add(slots, cancellationToken);
                rows++;
            }
        }

        if (rows == 0)
        {
            throw new ModelAsDataException(ErrorCode.InvalidArgument, $"The baseline {source} has no rows: give a table or view with the rows the version was trained or validated on.");
        }

        var inputProfiles = inputs.Select(b => b.Build(given.GetValueOrDefault(b.Column))).ToList();
        var outputProfiles = profiler.Build(given, cancellationToken);
        using var transaction = Connection.BeginTransaction(deferred: false);
        await Connection.ExecuteAsync(new CommandDefinition("DELETE FROM mad_baselines WHERE model = @model AND version = @version", new { model, version }, transaction, cancellationToken: cancellationToken));
        await Connection.ExecuteAsync(new CommandDefinition(
            // The counts made in the old bins no longer fit: the prediction tables' and predict()'s ('online:<model>').
            "DELETE FROM mad_profile_counts WHERE version = @version AND (prediction_table IN (SELECT name FROM mad_prediction_tables WHERE model = @model OR model LIKE @prefix) OR prediction_table = 'online:' || @model)",
            new { model, version, prefix = model + "@%" }, transaction, cancellationToken: cancellationToken));
        foreach (var profile in inputProfiles.Concat(outputProfiles))
        {
            await Connection.ExecuteAsync(new CommandDefinition(SqliteMonitoringSql.InsertBaseline, ProfileParameters(model, version, profile, source), transaction, cancellationToken: cancellationToken));
        }

        transaction.Commit();
        return new BaselineSummary(model, version, source, inputProfiles.Count, outputProfiles.Count, rows);
    }

    /// <summary>One profile as the parameters of a mad_baselines row (a set baseline's or a first window's).</summary>
    private static object ProfileParameters(string model, int version, ColumnProfile profile, string source) => new
    {
        model,
        version,
        kind = profile.Kind == ProfileKind.Input ? "input" : "output",
        column = profile.Column,
        type = profile.Type == ProfileType.Numeric ? "numeric" : "category",
        edges = profile.Type == ProfileType.Numeric ? JsonSerializer.Serialize(profile.Edges) : null,
        categories = profile.Type == ProfileType.Category ? JsonSerializer.Serialize(profile.Categories) : null,
        counts = JsonSerializer.Serialize(profile.Counts),
        nulls = profile.NullCount,
        spread = profile.Spread,
        source,
        by = Environment.UserName,
        at = SqliteTime.Now(),
    };

    /// <summary>A version's baseline profiles (none: no baseline).</summary>
    public static async Task<IReadOnlyList<ColumnProfile>> BaselineAsync(SqliteConnection connection, string model, int version, CancellationToken cancellationToken)
    {
        var rows = await connection.QueryAsync<BaselineRow>(new CommandDefinition(SqliteMonitoringSql.Baseline, new { model, version }, cancellationToken: cancellationToken));
        return rows.Select(r => r.ToProfile()).ToList();
    }

    /// <summary>
    /// A counter for a version's baseline, or a learning one when it has none (see <see cref="ProfileCounter.Learn"/>);
    /// null when counting is off (mad_settings drift_counting = 0, 025), as PostgreSQL's 026_4.
    /// </summary>
    public static async Task<ProfileCounter?> CounterAsync(SqliteConnection connection, string model, int version, IReadOnlyList<string> inputColumns,
        IReadOnlyList<Core.Onnx.OutputColumn> outputColumns, CancellationToken cancellationToken)
    {
        if (!CountingOn(connection, null))
        {
            return null;
        }

        var baseline = await BaselineAsync(connection, model, version, cancellationToken);
        return baseline.Count == 0 ? ProfileCounter.Learn(model, version, inputColumns, outputColumns) : ProfileCounter.Create(baseline, inputColumns, outputColumns);
    }

    /// <summary>Whether the doors count scored rows (mad_settings drift_counting, 025: anything but '0' is on).</summary>
    internal static bool CountingOn(SqliteConnection connection, SqliteTransaction? transaction) =>
        connection.ExecuteScalar<string?>("SELECT value FROM mad_settings WHERE name = 'drift_counting'", transaction: transaction) != "0";

    /// <summary>
    /// Adds the counter's counts (and empties it) to the table's profile counts, in the connection's open transaction;
    /// a learning counter first stores the first-window reference fitted on its values and counts them into it.
    /// </summary>
    public static void AddCounts(SqliteConnection connection, SqliteTransaction transaction, string table, int version, DateTimeOffset scoredAt, ProfileCounter counter)
    {
        if (counter.IsLearning)
        {
            var source = connection.ExecuteScalar<string>("SELECT source FROM mad_prediction_tables WHERE name = @table", new { table }, transaction) ?? table;
            foreach (var profile in counter.LearnedProfiles())
            {
                connection.Execute(SqliteMonitoringSql.InsertFirstWindow, ProfileParameters(counter.LearningModel!, version, profile, source), transaction);
            }

            counter.Adopt(connection.Query<BaselineRow>(SqliteMonitoringSql.Baseline, new { model = counter.LearningModel, version }, transaction).Select(r => r.ToProfile()).ToList());
        }

        var hour = new DateTimeOffset(scoredAt.UtcDateTime.Year, scoredAt.UtcDateTime.Month, scoredAt.UtcDateTime.Day, scoredAt.UtcDateTime.Hour, 0, 0, TimeSpan.Zero);
        foreach (var count in counter.Drain())
        {
            connection.Execute(SqliteMonitoringSql.AddCount, new
            {
                table,
                version,
                window = SqliteTime.ToText(hour),
                kind = count.Kind == ProfileKind.Input ? "input" : "output",
                column = count.Column,
                bin = count.Bin,
                count = count.Count,
            }, transaction);
        }
    }

    internal sealed record BaselineRow(string Kind, string Column_name, string Type, string? Edges, string? Categories, string Counts, long Null_count, double Spread, string Source,
        string Reference)
    {
        public ColumnProfile ToProfile() => new(Column_name, Kind == "input" ? ProfileKind.Input : ProfileKind.Output,
            Type == "numeric" ? ProfileType.Numeric : ProfileType.Category,
            Edges is null ? null : JsonSerializer.Deserialize<double[]>(Edges), Categories is null ? null : JsonSerializer.Deserialize<string[]>(Categories),
            JsonSerializer.Deserialize<long[]>(Counts)!, Null_count, Spread) { Reference = Reference };
    }
}

using System.Text.Json.Nodes;
using ModelAsData.Core;
using ModelAsData.Core.Monitoring;
using ModelAsData.Core.Onnx;
using ModelAsData.Core.Registry;
using ModelAsData.Postgres.Registry;
using Npgsql;
using NpgsqlTypes;

namespace ModelAsData.Postgres.Monitoring;

/// <summary>
/// Drift monitoring on PostgreSQL: baselines through mad.set_baseline (inputs, profiled in SQL as the caller) plus
/// the outputs' profile, scored here over the same rows read on the caller's own connection and stored with
/// mad.store_baseline; drift and histograms are mad.drift's and mad.drift_histograms' rows. Does not own the registry.
/// </summary>
public sealed class PostgresMonitoring(PostgresModelRegistry registry, ModelCache cache) : IMonitoring
{
    public async Task<BaselineSummary> SetBaselineAsync(string model, int version, string source, string? bins, CancellationToken cancellationToken = default)
    {
        var found = await registry.ResolveAsync(ModelReference.Parse($"{model}@{version}"), cancellationToken);
        var onnx = cache.GetOrLoad(found.Sha256, () => registry.LoadBytesAsync(model, version, cancellationToken).GetAwaiter().GetResult());
        var given = ProfileBuilder.ParseBins(bins);
        var outputNames = onnx.Signature.Columns.Select(c => c.Name).ToHashSet(StringComparer.Ordinal);
        var inputBins = new JsonObject();
        foreach (var (column, edges) in given.Where(g => !outputNames.Contains(g.Key)))
        {
            inputBins[column] = new JsonArray(edges.Select(e => (JsonNode?)JsonValue.Create(e)).ToArray());
        }

        await using var connection = await registry.DataSource.OpenConnectionAsync(cancellationToken);
        await using var transaction = await connection.BeginTransactionAsync(cancellationToken);
        string sourceName;
        await using (var name = new NpgsqlCommand(MonitoringSql.SourceName, connection, transaction) { Parameters = { new() { Value = source } } })
        {
            sourceName = (string)(await name.ExecuteScalarAsync(cancellationToken))!;
        }

        int inputs;
        await using (var set = new NpgsqlCommand(MonitoringSql.SetBaseline, connection, transaction)
        {
            Parameters =
            {
                new() { Value = model }, new() { Value = version }, new() { Value = source },
                new() { Value = inputBins.Count == 0 ? DBNull.Value : inputBins.ToJsonString(), NpgsqlDbType = NpgsqlDbType.Text },
            },
        })
        {
            inputs = (int)(await set.ExecuteScalarAsync(cancellationToken))!;
        }

        // The outputs: the rows read as the caller (this connection), scored here.
        var mapping = await MappingAsync(connection, transaction, model, onnx.Signature, sourceName, cancellationToken);
        using var profiler = new OutputProfiler(onnx);
        var columns = mapping.SlotColumns.Distinct(StringComparer.Ordinal).ToList();
        var ordinals = mapping.SlotColumns.Select(c => columns.IndexOf(c)).ToArray();
        long rows = 0;
        await using (var read = new NpgsqlCommand($"SELECT {string.Join(", ", columns.Select(Quote))} FROM {sourceName}", connection, transaction))
        await using (var reader = await read.ExecuteReaderAsync(cancellationToken))
        {
            var values = new object?[columns.Count];
            var slots = new object?[ordinals.Length];
            while (await reader.ReadAsync(cancellationToken))
            {
                reader.GetValues(values!);
                for (var s = 0; s < ordinals.Length; s++)
                {
                    slots[s] = values[ordinals[s]];
                }

                profiler.Add(slots, cancellationToken);
                rows++;
            }
        }

        var outputs = profiler.Build(given, cancellationToken);
        await using (var store = new NpgsqlCommand(MonitoringSql.StoreBaseline, connection, transaction)
        {
            Parameters = { new() { Value = model }, new() { Value = version }, new() { Value = sourceName }, new() { Value = ProfileJson.ToJson(outputs).ToJsonString(), NpgsqlDbType = NpgsqlDbType.Text } },
        })
        {
            await store.ExecuteScalarAsync(cancellationToken);
        }

        await transaction.CommitAsync(cancellationToken);
        return new BaselineSummary(model, version, sourceName, inputs, outputs.Count, rows);
    }

    public async Task<IReadOnlyList<DriftRow>> DriftAsync(string table, DateTimeOffset? since, TimeSpan window, CancellationToken cancellationToken = default)
    {
        await using var connection = await registry.DataSource.OpenConnectionAsync(cancellationToken);
        await using var command = new NpgsqlCommand(MonitoringSql.Drift, connection) { Parameters = { new() { Value = table }, Since(since), new() { Value = window } } };
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        var rows = new List<DriftRow>();
        while (await reader.ReadAsync(cancellationToken))
        {
            rows.Add(new DriftRow(reader.GetFieldValue<DateTimeOffset>(0), reader.GetFieldValue<DateTimeOffset>(1), reader.GetInt32(2), reader.GetString(3), reader.GetString(4),
                reader.GetString(5), reader.IsDBNull(6) ? null : reader.GetDouble(6), reader.IsDBNull(7) ? null : reader.GetDouble(7), reader.GetBoolean(8),
                reader.GetInt64(9), reader.GetInt64(10), reader.GetString(11)));
        }

        return rows;
    }

    public async Task<IReadOnlyList<HistogramBin>> HistogramsAsync(string table, DateTimeOffset? since, TimeSpan window, CancellationToken cancellationToken = default)
    {
        await using var connection = await registry.DataSource.OpenConnectionAsync(cancellationToken);
        await using var command = new NpgsqlCommand(MonitoringSql.Histograms, connection) { Parameters = { new() { Value = table }, Since(since), new() { Value = window } } };
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        var bins = new List<HistogramBin>();
        while (await reader.ReadAsync(cancellationToken))
        {
            bins.Add(new HistogramBin(reader.GetFieldValue<DateTimeOffset>(0), reader.GetFieldValue<DateTimeOffset>(1), reader.GetInt32(2), reader.GetString(3), reader.GetString(4),
                reader.GetInt32(5), reader.GetString(6), reader.IsDBNull(7) ? null : reader.GetInt64(7), reader.GetInt64(8)));
        }

        return bins;
    }

    private static NpgsqlParameter Since(DateTimeOffset? since) =>
        new() { Value = since is { } s ? s.UtcDateTime : DBNull.Value, NpgsqlDbType = NpgsqlDbType.TimestampTz };

    /// <summary>The model's inputs mapped onto the baseline's columns as its prediction tables map them (else by metadata or name).</summary>
    private static async Task<FeatureMapping> MappingAsync(NpgsqlConnection connection, NpgsqlTransaction transaction, string model, ModelSignature signature, string source,
        CancellationToken cancellationToken)
    {
        await using var command = new NpgsqlCommand(MonitoringSql.Mapping, connection, transaction) { Parameters = { new() { Value = model }, new() { Value = source } } };
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        await reader.ReadAsync(cancellationToken);
        var features = reader.IsDBNull(0) ? null : FeatureMapping.Parse(reader.GetString(0));
        var columns = reader.GetFieldValue<string[]>(1);
        return FeatureMapping.Resolve(signature, model, features, source, columns);
    }

    private static string Quote(string identifier) => "\"" + identifier.Replace("\"", "\"\"", StringComparison.Ordinal) + "\"";
}

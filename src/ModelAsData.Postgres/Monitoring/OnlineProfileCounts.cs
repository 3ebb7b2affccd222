using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using ModelAsData.Core.Monitoring;
using ModelAsData.Core.Onnx;
using Npgsql;

namespace ModelAsData.Postgres.Monitoring;

/// <summary>One online prediction as drift monitoring counts it: the features' JSON (keyed by model input) and the answer.</summary>
/// <param name="Outputs">The answer (output column → value), or null when the request failed (its outputs count as null).</param>
public readonly record struct OnlineRow(DateTime PredictedAt, string Model, int Version, string Features, JsonObject? Outputs);

/// <summary>
/// Counts online requests (CALL mad.predict, predict_async, HTTP) into their version's baseline bins, under the
/// pseudo table <c>online:&lt;model&gt;</c> (026_2_online_drift.sql), in the transaction of the prediction log's
/// batch: the callers never wait for it. A request's features are keyed by model input and counted under the source
/// columns the model's first prediction table maps them from (else by input name). A version without a stored profile
/// (a baseline, or a first window another door stored) is not counted. What it read of a version is kept for
/// <see cref="MaxAge"/>, so a new baseline is counted into within seconds. Thread-safe; does not own connections.
/// </summary>
public sealed class OnlineProfileCounts
{
    /// <summary>How long a version's profiles and mapping are trusted before they are read again.</summary>
    public static readonly TimeSpan MaxAge = TimeSpan.FromSeconds(5);

    private readonly ConcurrentDictionary<(string Model, int Version), Plan> _plans = new();

    /// <summary>The profile counts' table name of a model's online requests.</summary>
    public static string TableOf(string model) => "online:" + model;

    /// <summary>Counts the rows and adds their counts in <paramref name="transaction"/>, per model, version and hour.</summary>
    public async Task AddAsync(NpgsqlConnection connection, NpgsqlTransaction transaction, IReadOnlyList<OnlineRow> rows, CancellationToken cancellationToken)
    {
        foreach (var group in rows.GroupBy(r => (r.Model, r.Version, Hour: new DateTime(r.PredictedAt.Ticks - (r.PredictedAt.Ticks % TimeSpan.TicksPerHour), DateTimeKind.Utc))))
        {
            var plan = await PlanAsync(connection, transaction, group.Key.Model, group.Key.Version, cancellationToken);
            if (plan.Create() is not { } counter)
            {
                continue;
            }

            foreach (var row in group)
            {
                plan.Count(counter, row);
            }

            await PostgresProfileCounts.AddAsync(connection, transaction, TableOf(group.Key.Model), group.Key.Version, group.Key.Hour, counter, cancellationToken);
        }
    }

    private async Task<Plan> PlanAsync(NpgsqlConnection connection, NpgsqlTransaction transaction, string model, int version, CancellationToken cancellationToken)
    {
        if (_plans.TryGetValue((model, version), out var cached) && Stopwatch.GetElapsedTime(cached.ReadAt) < MaxAge)
        {
            return cached;
        }

        var profiles = await PostgresProfileCounts.BaselineAsync(connection, model, version, cancellationToken);
        JsonObject? mapping = null;
        if (profiles.Count > 0)
        {
            await using var command = new NpgsqlCommand("SELECT mad.online_features($1)::text", connection, transaction) { Parameters = { new() { Value = model } } };
            mapping = await command.ExecuteScalarAsync(cancellationToken) is string json ? JsonNode.Parse(json) as JsonObject : null;
        }

        var plan = new Plan(profiles, mapping);
        _plans[(model, version)] = plan;
        return plan;
    }

    /// <summary>A version's profiles and how a request's inputs map to the profiled columns.</summary>
    private sealed class Plan
    {
        private readonly IReadOnlyList<ColumnProfile> _profiles;
        private readonly string[] _inputColumns;
        private readonly OutputColumn[] _outputColumns;
        // Per model input named in the requests: its columns, in order (one for a scalar input).
        private readonly Dictionary<string, string[]> _inputs = new(StringComparer.Ordinal);
        private readonly Dictionary<string, int> _columnIndex = new(StringComparer.Ordinal);

        public Plan(IReadOnlyList<ColumnProfile> profiles, JsonObject? mapping)
        {
            _profiles = profiles;
            _inputColumns = profiles.Where(p => p.Kind == ProfileKind.Input).Select(p => p.Column).ToArray();
            _outputColumns = profiles.Where(p => p.Kind == ProfileKind.Output)
                .Select(p => new OutputColumn(p.Column, p.Type == ProfileType.Numeric ? ColumnType.Real : ColumnType.Text, 0, 0, null)).ToArray();
            for (var i = 0; i < _inputColumns.Length; i++)
            {
                _columnIndex[_inputColumns[i]] = i;
            }

            if (mapping is not null)
            {
                foreach (var (input, columns) in mapping)
                {
                    _inputs[input] = columns switch
                    {
                        JsonArray list => list.Select(c => c?.GetValue<string>() ?? "").ToArray(),
                        JsonValue one when one.TryGetValue<string>(out var column) => [column],
                        _ => [],
                    };
                }
            }
        }

        public long ReadAt { get; } = Stopwatch.GetTimestamp();

        public ProfileCounter? Create() => _profiles.Count == 0 ? null : ProfileCounter.Create(_profiles, _inputColumns, _outputColumns);

        /// <summary>
        /// Counts one request. Inputs: each profiled column its value, when every input the request gives is a
        /// number, text, boolean, null or an array of them of the mapped length; a request sent otherwise (binary
        /// tensors over HTTP) does not count its inputs. Outputs: the answer's values by column name.
        /// </summary>
        public void Count(ProfileCounter counter, OnlineRow row)
        {
            if (_inputColumns.Length > 0)
            {
                CountInputs(counter, row.Features);
            }

            for (var c = 0; c < _outputColumns.Length; c++)
            {
                if (row.Outputs is null)
                {
                    counter.CountOutput(c, null);
                }
                else if (row.Outputs.TryGetPropertyValue(_outputColumns[c].Name, out var node))
                {
                    counter.CountOutput(c, Scalar(node)); // an answer by output tensor (HTTP) names no column: not counted
                }
            }
        }

        private void CountInputs(ProfileCounter counter, string features)
        {
            JsonObject? parsed;
            try
            {
                parsed = JsonNode.Parse(features) as JsonObject;
            }
            catch (JsonException)
            {
                return;
            }

            if (parsed is null)
            {
                return;
            }

            var count = _inputColumns.Length;
            var isNull = new bool[count];
            var numbers = new double[count];
            var texts = new string?[count];
            var seen = new bool[count];
            foreach (var (input, node) in parsed)
            {
                var columns = _inputs.TryGetValue(input, out var mapped) ? mapped : [input];
                var values = new List<JsonNode?>();
                if (!Flatten(node, values) || (values.Count != columns.Length && columns.Length > 0))
                {
                    return; // not a value this door can read (a binary tensor's digest, a shape that does not match)
                }

                for (var i = 0; i < columns.Length; i++)
                {
                    if (!_columnIndex.TryGetValue(columns[i], out var at))
                    {
                        continue;
                    }

                    seen[at] = true;
                    switch (Scalar(values[i]))
                    {
                        case null: isNull[at] = true; break;
                        case string text: texts[at] = text; break;
                        case double d: numbers[at] = d; break;
                        case long l: numbers[at] = l; break;
                        case bool b: numbers[at] = b ? 1 : 0; break;
                    }
                }
            }

            for (var i = 0; i < count; i++)
            {
                isNull[i] |= !seen[i]; // a column the request did not give
            }

            counter.CountInputs(isNull, numbers, texts);
        }

        /// <summary>The leaves of a value or (nested) array, in order; false for an object (not a value).</summary>
        private static bool Flatten(JsonNode? node, List<JsonNode?> into)
        {
            switch (node)
            {
                case JsonArray array:
                    foreach (var item in array)
                    {
                        if (!Flatten(item, into))
                        {
                            return false;
                        }
                    }

                    return true;
                case JsonObject:
                    return false;
                default:
                    into.Add(node);
                    return true;
            }
        }

        private static object? Scalar(JsonNode? node) => node is not JsonValue value ? null : value.GetValueKind() switch
        {
            JsonValueKind.String => value.GetValue<string>(),
            JsonValueKind.Number => value.TryGetValue<long>(out var l) ? l : value.TryGetValue<double>(out var d) ? d
                : double.Parse(value.ToJsonString(), CultureInfo.InvariantCulture),
            JsonValueKind.True => true,
            JsonValueKind.False => false,
            _ => null,
        };
    }
}

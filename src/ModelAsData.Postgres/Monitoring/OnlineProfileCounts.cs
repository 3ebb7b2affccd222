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
/// (no baseline, no first window another door stored) learns its first window here (044_2): the values of its first
/// requests are kept until there are <c>first_window_rows</c> (setting) of them, then the reference fitted on them is
/// stored and they are counted into it, in that batch's transaction. What it read of a version is kept for
/// <see cref="MaxAge"/>, so a new baseline is counted into within seconds. Used by the log writer's one thread; does
/// not own connections.
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
            var (model, version, hour) = group.Key;
            var plan = await PlanAsync(connection, transaction, model, version, cancellationToken);
            if (plan.Carried is { } carried)
            {
                // Learned while another door or sidecar stored the version's reference: counted into it now.
                plan.Carried = null;
                await PostgresProfileCounts.AddAsync(connection, transaction, TableOf(model), version, hour, carried, cancellationToken);
            }

            if (plan.Learns)
            {
                foreach (var row in group)
                {
                    plan.Learn(row);
                }

                if (plan.Learner is not { } learner || plan.Learned < plan.FirstWindowRows)
                {
                    continue; // too few values yet to fit bins on
                }

                // Stores the reference fitted on them (unless one was stored meanwhile) and counts them into it.
                plan.Learner = null;
                _plans.TryRemove((model, version), out _);
                await PostgresProfileCounts.AddAsync(connection, transaction, TableOf(model), version, hour, learner, cancellationToken);
                continue;
            }

            if (plan.Create() is not { } counter)
            {
                continue;
            }

            foreach (var row in group)
            {
                plan.Count(counter, row);
            }

            await PostgresProfileCounts.AddAsync(connection, transaction, TableOf(model), version, hour, counter, cancellationToken);
        }
    }

    private async Task<Plan> PlanAsync(NpgsqlConnection connection, NpgsqlTransaction transaction, string model, int version, CancellationToken cancellationToken)
    {
        _plans.TryGetValue((model, version), out var cached);
        if (cached is not null && Stopwatch.GetElapsedTime(cached.ReadAt) < MaxAge)
        {
            return cached;
        }

        var profiles = await PostgresProfileCounts.BaselineAsync(connection, model, version, cancellationToken);
        JsonObject? mapping = null;
        var firstWindowRows = 0;
        if (profiles is not null) // null: counting is off (drift_counting = 0)
        {
            await using var command = new NpgsqlCommand("SELECT mad.online_features($1)::text, mad.setting_int('first_window_rows', 100)", connection, transaction)
            {
                Parameters = { new() { Value = model } },
            };
            await using var reader = await command.ExecuteReaderAsync(cancellationToken);
            await reader.ReadAsync(cancellationToken);
            mapping = reader.IsDBNull(0) ? null : JsonNode.Parse(reader.GetString(0)) as JsonObject;
            firstWindowRows = Math.Max(1, reader.GetInt32(1));
        }

        Plan plan;
        if (profiles is { Count: 0 } && cached?.Learner is not null)
        {
            plan = cached; // still no reference: keeps learning
            plan.ReadAt = Stopwatch.GetTimestamp();
        }
        else
        {
            plan = new Plan(model, version, profiles, mapping, firstWindowRows);
            if (profiles is { Count: > 0 } && cached?.Learner is { } learner)
            {
                learner.Adopt(profiles);
                plan.Carried = learner;
            }
        }

        _plans[(model, version)] = plan;
        return plan;
    }

    /// <summary>
    /// A version's profiles and how a request's inputs map to the profiled columns; or, for a version without any, the
    /// learning counter of its first window; or nothing (counting is off).
    /// </summary>
    private sealed class Plan
    {
        private readonly IReadOnlyList<ColumnProfile> _profiles;
        private string[] _inputColumns = [];
        private OutputColumn[] _outputColumns = [];
        // Per model input named in the requests: its columns, in order (one for a scalar input).
        private readonly Dictionary<string, string[]> _inputs = new(StringComparer.Ordinal);
        private readonly Dictionary<string, int> _columnIndex = new(StringComparer.Ordinal);
        private readonly string _model;
        private readonly int _version;
        private readonly bool _learns;

        public Plan(string model, int version, IReadOnlyList<ColumnProfile>? profiles, JsonObject? mapping, int firstWindowRows)
        {
            (_model, _version, FirstWindowRows) = (model, version, firstWindowRows);
            _profiles = profiles ?? [];
            _learns = profiles is { Count: 0 };
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

            if (!_learns)
            {
                Columns(_profiles.Where(p => p.Kind == ProfileKind.Input).Select(p => p.Column).ToArray(),
                    _profiles.Where(p => p.Kind == ProfileKind.Output)
                        .Select(p => new OutputColumn(p.Column, p.Type == ProfileType.Numeric ? ColumnType.Real : ColumnType.Text, 0, 0, null)).ToArray());
            }
        }

        /// <summary>Whether the version has no reference yet, so its requests are learned rather than counted.</summary>
        public bool Learns => _learns;

        /// <summary>A version without a reference: the counter keeping its first requests' values (null once stored, or not learning).</summary>
        public ProfileCounter? Learner { get; set; }

        /// <summary>How many requests <see cref="Learner"/> holds.</summary>
        public int Learned { get; private set; }

        /// <summary>How many requests a first window is fitted on (setting first_window_rows).</summary>
        public int FirstWindowRows { get; }

        /// <summary>A learner of an earlier plan, adopted into the reference stored meanwhile: its counts are still to be added.</summary>
        public ProfileCounter? Carried { get; set; }

        public long ReadAt { get; set; } = Stopwatch.GetTimestamp();

        /// <summary>
        /// Keeps one request's values for the first window. The first request decides the columns: the mapped source
        /// columns (else the inputs it names), and the answer's outputs (text, or numbers).
        /// </summary>
        public void Learn(OnlineRow row)
        {
            if (!_learns)
            {
                return;
            }

            if (Learner is null && Learned == 0)
            {
                var inputs = _inputs.Count > 0
                    ? _inputs.Values.SelectMany(c => c).Distinct(StringComparer.Ordinal).ToArray()
                    : (JsonNode.Parse(row.Features) as JsonObject)?.Select(p => p.Key).ToArray() ?? [];
                var outputs = (row.Outputs ?? []).Where(p => p.Value is JsonValue)
                    .Select(p => new OutputColumn(p.Key, p.Value!.GetValueKind() == JsonValueKind.String ? ColumnType.Text : ColumnType.Real, 0, 0, null)).ToArray();
                Columns(inputs, outputs);
                Learner = ProfileCounter.Learn(_model, _version, _inputColumns, _outputColumns);
            }

            if (Learner is not null)
            {
                Count(Learner, row);
                Learned++;
            }
        }

        private void Columns(string[] inputColumns, OutputColumn[] outputColumns)
        {
            (_inputColumns, _outputColumns) = (inputColumns, outputColumns);
            for (var i = 0; i < _inputColumns.Length; i++)
            {
                _columnIndex[_inputColumns[i]] = i;
            }
        }

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

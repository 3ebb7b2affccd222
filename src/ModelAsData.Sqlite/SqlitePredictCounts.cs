using System.Data;
using System.Runtime.CompilerServices;
using Dapper;
using Microsoft.Data.Sqlite;
using ModelAsData.Core;
using ModelAsData.Core.Monitoring;
using ModelAsData.Core.Onnx;

namespace ModelAsData.Sqlite;

/// <summary>
/// Drift counting of the embedded <c>predict()</c> SQL functions (issue 16: every door that scores rows counts). A
/// scalar function runs inside the caller's statement, where writing to the same file is not safe (the statement may
/// itself be writing, or hold the only write lock), so each connection counts its rows in memory, per version and
/// hour, under <c>online:&lt;model&gt;</c> (the name PostgreSQL's online requests count under), and writes them to
/// mad_profile_counts outside any statement: when the connection closes (on a second connection, in one transaction)
/// or when the caller flushes (<see cref="SqlitePredictFunctions.FlushDriftCounts"/>). Counts of a process that dies
/// before either are lost; the predictions are not affected. A version without a baseline learns its first window
/// from its first <see cref="FirstWindowRows"/> rows, as PostgreSQL's online door does. One per connection, used on its
/// thread.
/// </summary>
internal sealed class SqlitePredictCounts
{
    /// <summary>Rows a first window is fitted on (PostgreSQL's setting first_window_rows, default 100).</summary>
    public const int FirstWindowRows = 100;

    private static readonly ConditionalWeakTable<SqliteConnection, SqlitePredictCounts> ByConnection = new();

    private readonly Dictionary<(string Model, int Version), Plan> _plans = [];
    private readonly string _connectionString;

    private SqlitePredictCounts(string connectionString) => _connectionString = connectionString;

    /// <summary>Starts counting the connection's predict() rows; its counts are written when it closes.</summary>
    public static SqlitePredictCounts Attach(SqliteConnection connection)
    {
        var counts = new SqlitePredictCounts(connection.ConnectionString);
        ByConnection.AddOrUpdate(connection, counts);
        connection.StateChange += (_, e) =>
        {
            if (e.CurrentState != ConnectionState.Closed || !counts.HasCounts)
            {
                return;
            }

            try
            {
                using var writer = new SqliteConnection(counts._connectionString);
                writer.Open();
                counts.Flush(writer, null);
            }
            catch (SqliteException)
            {
                // A read-only or vanished file, or a lock held too long: the counts are lost, and closing never fails for them.
            }
        };
        return counts;
    }

    /// <summary>The counts of a connection the functions were registered on; null if none.</summary>
    public static SqlitePredictCounts? Of(SqliteConnection connection) => ByConnection.TryGetValue(connection, out var counts) ? counts : null;

    private bool HasCounts => _plans.Values.Any(p => p.Rows > 0 && !(p.Counter!.IsLearning && p.Rows < FirstWindowRows));

    /// <summary>Counts one scored row: its slot values (null when the call gave tensors: inputs not counted) and its outputs.</summary>
    public void Count(SqliteConnection connection, SqliteModelResolver.ResolvedModel resolved, object?[]? slots, ScoredBatch scored)
    {
        var key = (resolved.Version.Model, resolved.Version.Version);
        if (!_plans.TryGetValue(key, out var plan))
        {
            plan = Plan.Read(connection, resolved);
            _plans[key] = plan;
        }

        if (plan.Counter is not { } counter)
        {
            return;
        }

        if (slots is not null && plan.SlotColumns is { } columns)
        {
            for (var s = 0; s < slots.Length && s < columns.Length; s++)
            {
                if (columns[s] >= 0)
                {
                    counter.CountInput(columns[s], slots[s] is DBNull ? null : slots[s]);
                }
            }
        }

        counter.CountOutputs(scored, 0);
        plan.Rows++;
    }

    /// <summary>
    /// Writes the counts so far in one transaction on <paramref name="connection"/> (in <paramref name="transaction"/>
    /// when given). A first window with fewer than <see cref="FirstWindowRows"/> rows keeps learning (and is lost
    /// if the connection closes before it has them: bins fitted on a handful of rows would call every later window drifted).
    /// </summary>
    public void Flush(SqliteConnection connection, SqliteTransaction? transaction)
    {
        // A plan made while counting was off is read again, so turning it on counts predict() from the next flush.
        foreach (var off in _plans.Where(p => p.Value.Counter is null).Select(p => p.Key).ToList())
        {
            _plans.Remove(off);
        }

        if (!HasCounts)
        {
            return;
        }

        var own = transaction is null ? connection.BeginTransaction() : null;
        var scoredAt = DateTimeOffset.UtcNow;
        foreach (var ((model, version), plan) in _plans.ToList())
        {
            if (plan.Counter is not { } counter || plan.Rows == 0 || (counter.IsLearning && plan.Rows < FirstWindowRows))
            {
                continue;
            }

            SqliteMonitoring.AddCounts(connection, transaction ?? own!, OnlineTable(model), version, scoredAt, counter);
            _plans.Remove((model, version)); // read again at the next row: a baseline set since is counted into
        }

        own?.Commit();
        own?.Dispose();
    }

    /// <summary>The profile counts' name of a model's predict() rows, as PostgreSQL's online requests.</summary>
    public static string OnlineTable(string model) => "online:" + model;

    /// <summary>A version's counter, and which profiled column each of predict()'s feature slots is.</summary>
    private sealed class Plan
    {
        public ProfileCounter? Counter { get; private init; }

        /// <summary>Per scorer slot, its column's index among the counter's inputs (−1: not profiled); null: inputs are not counted.</summary>
        public int[]? SlotColumns { get; private init; }

        /// <summary>Rows counted since the last flush.</summary>
        public long Rows { get; set; }

        /// <summary>
        /// The slots are named as the model's first prediction table maps its source columns (else by input name, for
        /// inputs of one value), the columns a baseline profiles.
        /// </summary>
        public static Plan Read(SqliteConnection connection, SqliteModelResolver.ResolvedModel resolved)
        {
            var (model, version) = (resolved.Version.Model, resolved.Version.Version);
            var signature = resolved.Model.Signature;
            var open = SqliteDatabase.OpenTransaction(connection); // inside the caller's statement, in its transaction if any
            if (!SqliteMonitoring.CountingOn(connection, open))
            {
                return new Plan(); // counting is off (drift_counting = 0): read again after the next flush
            }

            var bound = connection.Query<(string Features, string Source)>(
                "SELECT features, source FROM mad_prediction_tables WHERE model = @model OR model LIKE @prefix ORDER BY created_at LIMIT 1",
                new { model, prefix = model + "@%" }, open).ToList();
            string[]? slotColumns;
            try
            {
                var mapping = bound.Count > 0
                    ? FeatureMapping.Resolve(signature, model, FeatureMapping.Parse(bound[0].Features), bound[0].Source,
                        connection.Query<string>("SELECT name FROM pragma_table_info(@source)", new { source = bound[0].Source }, open).ToList())
                    : FeatureMapping.Resolve(signature, model, null, "predict()", signature.Inputs.Select(i => i.Name).ToList());
                slotColumns = mapping.SlotColumns.ToArray();
            }
            catch (Exception e) when (e is ModelAsDataException or ArgumentException)
            {
                slotColumns = null; // no mapping names the slots (an input of many values, no prediction table): outputs only
            }

            var inputColumns = slotColumns?.Distinct(StringComparer.Ordinal).ToArray() ?? [];
            var outputs = signature.Columns;
            var baseline = connection.Query<SqliteMonitoring.BaselineRow>(SqliteMonitoringSql.Baseline, new { model, version }, open).Select(r => r.ToProfile()).ToList();
            var counter = baseline.Count == 0 ? ProfileCounter.Learn(model, version, inputColumns, outputs) : ProfileCounter.Create(baseline, inputColumns, outputs);
            return new Plan
            {
                Counter = counter,
                SlotColumns = slotColumns?.Select(c => Array.IndexOf(inputColumns, c)).ToArray(),
            };
        }
    }
}

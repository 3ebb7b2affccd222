using System.Globalization;
using System.Diagnostics;
using System.Text.Json;
using Dapper;
using Microsoft.Data.Sqlite;
using ModelAsData.Core;
using ModelAsData.Core.Deployments;
using ModelAsData.Core.Monitoring;
using ModelAsData.Core.Onnx;
using ModelAsData.Core.Registry;
using ModelAsData.Core.Scoring;
using SQLitePCL;

namespace ModelAsData.Sqlite;

/// <summary>
/// A refresh reads every source row, scores in batches and replaces the output table's rows in one transaction, so a
/// reader sees the old predictions or the new ones, never a mix. A row whose features cannot be converted gets its
/// error in its output row; the rest of its batch is scored.
/// </summary>
public sealed partial class SqlitePredictionTables
{
    /// <summary>How often a refresh starts again when the version or deployment changed while it prepared.</summary>
    private const int StartAttempts = 3;

    public Task<RefreshResult> RefreshAsync(string name, IProgress<RefreshProgress>? progress = null, CancellationToken cancellationToken = default) =>
        RefreshAsync(name, progress, 1, cancellationToken);

    private async Task<RefreshResult> RefreshAsync(string name, IProgress<RefreshProgress>? progress, int attempt, CancellationToken cancellationToken)
    {
        var started = Stopwatch.GetTimestamp();
        var table = await GetAsync(name, cancellationToken);
        var version = await _registry.ResolveAsync(ModelReference.Parse(table.Model), cancellationToken);
        if (version.Status != VersionStatus.Ready)
        {
            throw SqliteRegistryMessages.NotReadyToScore(version);
        }

        var model = _registry.LoadModel(version, _cache, cancellationToken);
        EnsureSameColumns(table, model.Signature, version);
        var sourceColumns = await SourceColumnsAsync(table.Source, cancellationToken);
        var mapping = FeatureMapping.Resolve(model.Signature, version.Model, table.Features, table.Source, sourceColumns.Select(c => c.Name).ToList());
        var total = await Connection.ExecuteScalarAsync<long>(new CommandDefinition($"SELECT count(*) FROM {SqliteDatabase.Quote(table.Source)}", cancellationToken: cancellationToken));

        // The deployment the refresh starts under (docs/DEPLOYMENTS.md): with a canary, each row by its key's bucket.
        var deployment = await new SqliteDeployments(_registry).ServingAsync(ModelReference.Parse(table.Model), cancellationToken);
        var canary = deployment?.CanaryVersion is { } canaryVersion ? await CanaryModelAsync(table, version.Model, canaryVersion, cancellationToken) : null;

        // Drift monitoring: rows are counted into their version's baseline bins as they pass, added with the rows; a
        // canary's rows under the canary version, against its own baseline (or first window).
        var profiledColumns = mapping.SlotColumns.Distinct(StringComparer.Ordinal).ToList();
        var counter = await SqliteMonitoring.CounterAsync(Connection, version.Model, version.Version, profiledColumns, table.Columns, cancellationToken);
        var canaryCounter = canary is null ? null
            : await SqliteMonitoring.CounterAsync(Connection, version.Model, deployment!.CanaryVersion!.Value, profiledColumns, table.Columns, cancellationToken);
        using var transaction = Connection.BeginTransaction(deferred: false);
        // The version and the deployment were read before the write lock, from separate statements: another process's
        // deploy, promote or abort in between would make this refresh score by a state that never was (the old
        // champion without its canary). Read again under the lock, which no change can pass until the commit: the
        // same, or start again from the new state. One version per arm for the whole refresh either way.
        var now = await new SqliteDeployments(_registry).ServingAsync(ModelReference.Parse(table.Model), cancellationToken, transaction);
        if (now != deployment || (deployment is not null && deployment.Version != version.Version))
        {
            transaction.Rollback();
            return attempt < StartAttempts ? await RefreshAsync(name, progress, attempt + 1, cancellationToken)
                : throw new ModelAsDataException(ErrorCode.Conflict,
                    $"The deployment of {table.Model} changed {StartAttempts} times while the refresh of {name} was starting, so nothing was scored: run mad tables refresh {name} again.");
        }

        if (!await HasArmAsync(Connection, name, cancellationToken))
        {
            await Connection.ExecuteAsync(new CommandDefinition(
                $"ALTER TABLE {SqliteDatabase.Quote(table.OutputTable)} ADD COLUMN arm TEXT NOT NULL DEFAULT 'champion' CHECK (arm IN ('champion', 'canary'))",
                transaction: transaction, cancellationToken: cancellationToken));
        }

        await SqliteOutcomeReports.KeepServedAsync(Connection, transaction, table, cancellationToken); // outcomes bound: what was served stays gradable
        await Connection.ExecuteAsync(new CommandDefinition($"DELETE FROM {SqliteDatabase.Quote(table.OutputTable)}", transaction: transaction, cancellationToken: cancellationToken));
        long rows, failed;
        CanaryComparison? comparison = null;
        try
        {
            if (canary is null)
            {
                (rows, failed) = await ScoreIntoAsync(table, model, version.Version, Arms.Champion, null, mapping, total, progress, counter, null, cancellationToken);
            }
            else
            {
                // Two passes over the source, each taking its arm's keys: the embedded store reads locally, and each
                // pass keeps the one-scorer-per-turn pipeline as it is. The champion's pass also scores the canary keys
                // in the agreement sample (kept in memory, never written); the canary's pass compares them (043_2).
                var percent = await AgreementPercentAsync(transaction, cancellationToken);
                var seed = deployment!.Seed!.Value;
                comparison = percent > 0 ? new CanaryComparison(new CanaryAgreementSums(table.Columns, asReal: false),
                    keys => CanaryAgreement.Samples(seed, StickyBucket.KeyText(keys), percent)) : null;
                var (champion, championFailed) = await ScoreIntoAsync(table, model, version.Version, Arms.Champion,
                    keys => deployment!.ArmOf(StickyBucket.KeyText(keys)) == Arms.Champion, mapping, total, progress, counter, null, cancellationToken, comparison);
                var (canaryRows, canaryFailed) = await ScoreIntoAsync(table, canary, deployment!.CanaryVersion!.Value, Arms.Canary,
                    keys => deployment.ArmOf(StickyBucket.KeyText(keys)) == Arms.Canary, mapping, total, progress, canaryCounter, null, cancellationToken, comparison);
                (rows, failed) = (champion + canaryRows, championFailed + canaryFailed);
            }
        }
        catch (SqliteException e) when (e.SqliteErrorCode == raw.SQLITE_CONSTRAINT)
        {
            throw new ModelAsDataException(ErrorCode.Conflict,
                $"{table.Source} has a key ({string.Join(", ", table.Key)}) that is repeated or null, so its rows cannot each get one prediction; " +
                $"the previous predictions are kept. Make the key unique, or create the prediction table with one that is. ({e.Message})", e);
        }

        await ShadowAsync(table, deployment, mapping, total, transaction, cancellationToken);
        await RecordAgreementAsync(table.Name, deployment, comparison?.Sums, transaction, cancellationToken);
        if (counter is not null)
        {
            SqliteMonitoring.AddCounts(Connection, transaction, name, version.Version, DateTimeOffset.UtcNow, counter);
        }

        if (canaryCounter is not null)
        {
            SqliteMonitoring.AddCounts(Connection, transaction, name, deployment!.CanaryVersion!.Value, DateTimeOffset.UtcNow, canaryCounter);
        }

        await Connection.ExecuteAsync(new CommandDefinition(SqliteTableSql.Refreshed,
            new { name, at = SqliteTime.Now(), version = version.Version, rows, failed }, transaction, cancellationToken: cancellationToken));
        transaction.Commit();
        progress?.Report(new RefreshProgress(rows, rows));
        return new RefreshResult(name, version, rows, failed, Stopwatch.GetElapsedTime(started));
    }

    /// <summary>
    /// Scorers that take turns: while this thread reads and writes SQLite, up to <c>Turns - 1</c> batches score on the
    /// thread pool. Scoring costs more than SQLite's share here (a 100-tree forest: ~2.2 µs a row against ~1.4 µs to
    /// read and write it), so two batches score at once while this thread waits for the oldest.
    /// </summary>
    private const int Turns = 3;

    /// <summary>Reads, scores and writes in batches, the three at once (see <see cref="Turns"/>).</summary>
    /// <param name="comparison">Under a canary with an agreement sample: the champion's pass also scores (and keeps) the
    /// sampled canary keys, the canary's pass compares its rows with them.</param>
    private async Task<(long Rows, long Failed)> ScoreIntoAsync(PredictionTable table, OnnxModel model, int version, string arm, Func<object[], bool>? takes,
        FeatureMapping mapping, long total, IProgress<RefreshProgress>? progress, ProfileCounter? counter, Deployment? shadowOf, CancellationToken cancellationToken,
        CanaryComparison? comparison = null)
    {
        var keeps = arm == Arms.Champion ? comparison?.Samples : null;
        var featureColumns = mapping.SlotColumns.Concat(mapping.TensorColumns.Select(t => t.Column)).Distinct(StringComparer.Ordinal).ToList();
        // The slot columns come first in featureColumns (and are the counter's input columns): a slot's index into them.
        var slotColumn = mapping.SlotColumns.Select(c => featureColumns.IndexOf(c)).ToArray();
        var source = new SqliteSourceRow(mapping.SlotColumns.Distinct(StringComparer.Ordinal).Count());
        var tensorOrdinal = mapping.TensorColumns.Select(t => table.Key.Count + featureColumns.IndexOf(t.Column)).ToArray();
        using var reader = new SqliteRawStatement(Connection, $"SELECT {string.Join(", ", table.Key.Concat(featureColumns).Select(SqliteDatabase.Quote))} FROM {SqliteDatabase.Quote(table.Source)}");
        using var writer = new OutputWriter(Connection, table, version, arm, counter, shadowOf, comparison);
        var turns = Enumerable.Range(0, Turns).Select(_ => model.CreateScorer(model.PreferredBatchSize))
            .Select(scorer => (Scorer: scorer, Rows: new PendingRows(scorer.Capacity, table.Key.Count))).ToArray();
        var inFlight = new Queue<(Task<ScoredBatch> Scoring, PendingRows Rows)>();
        long rows = 0, failed = 0;
        try
        {
            for (var turn = 0; ; turn = (turn + 1) % Turns)
            {
                // The oldest batch in flight is written before its scorer's turn comes round again.
                var (scorer, batch) = turns[turn];
                scorer.Clear();
                batch.Clear();
                var more = ReadBatch(reader, source, scorer, batch, slotColumn, tensorOrdinal, mapping, takes, keeps, counter, table.Key.Count);
                if (batch.Count > 0)
                {
                    inFlight.Enqueue((Task.Run(() => scorer.Score(cancellationToken), cancellationToken), batch));
                }

                while (inFlight.Count >= Turns - 1 || (!more && inFlight.Count > 0))
                {
                    var (scoring, scored) = inFlight.Dequeue();
                    failed += writer.Write(scored, await scoring);
                    rows += scored.Count - scored.KeptCount;
                    progress?.Report(new RefreshProgress(rows, Math.Max(total, rows)));
                }

                if (!more)
                {
                    return (rows, failed);
                }
            }
        }
        finally
        {
            // A failed write leaves batches scoring: let them finish before their scorers are disposed.
            await Task.WhenAll(inFlight.Select(f => f.Scoring)).ContinueWith(_ => { }, TaskScheduler.Default);
            foreach (var (scorer, _) in turns)
            {
                scorer.Dispose();
            }
        }
    }

    /// <summary>Reads rows until the scorer or the batch is full; returns whether the source may have more.</summary>
    private static bool ReadBatch(SqliteRawStatement reader, SqliteSourceRow source, ModelScorer scorer, PendingRows batch, int[] slotColumn, int[] tensorOrdinal,
        FeatureMapping mapping, Func<object[], bool>? takes, Func<object[], bool>? keeps, ProfileCounter? counter, int keyCount)
    {
        while (!scorer.IsFull && !batch.IsFull)
        {
            if (!reader.Read())
            {
                return false;
            }

            var row = batch.Add(reader);
            if (takes is not null && !takes(batch.Keys(row)))
            {
                if (keeps is null || !keeps(batch.Keys(row)))
                {
                    batch.Drop(); // the other arm's key: its pass scores it
                    continue;
                }

                batch.Keep(row); // a sampled canary key: scored for the comparison only, neither written nor counted
            }

            source.Read(reader, keyCount);
            if (counter is not null && !batch.IsKept(row))
            {
                source.Count(counter); // drift monitoring, from the values the model gets
            }

            if (FillRow(scorer, reader, source, slotColumn, tensorOrdinal, mapping) is { } error)
            {
                batch.Fail(row, error);
            }
            else
            {
                batch.Scored(row, scorer.Count);
                scorer.EndRow();
            }
        }

        return true;
    }

    /// <summary>Puts one source row's features into the scorer; returns the error that stops it, naming the column.</summary>
    private static string? FillRow(ModelScorer scorer, SqliteRawStatement reader, SqliteSourceRow source, int[] slotColumn, int[] tensorOrdinal, FeatureMapping mapping)
    {
        scorer.BeginRow();
        for (var s = 0; s < slotColumn.Length; s++)
        {
            if (source.Set(scorer, mapping.SlotNumbers[s], slotColumn[s]) is { } error)
            {
                scorer.CancelRow();
                return $"column {mapping.SlotColumns[s]}: {error}";
            }
        }

        // A tensor column holds a row's whole input: JSON text (nested arrays), or a BLOB of bytes (uint8 images).
        for (var t = 0; t < mapping.TensorColumns.Count; t++)
        {
            var (input, column) = mapping.TensorColumns[t];
            var ordinal = tensorOrdinal[t];
            var error = reader.ColumnType(ordinal) switch
            {
                raw.SQLITE_TEXT => JsonFeatures.SetTensor(scorer, input, reader.GetString(ordinal)),
                raw.SQLITE_BLOB => scorer.SetTensor(input, (byte[])reader.GetValue(ordinal)!),
                raw.SQLITE_NULL => $"null cannot feed input '{scorer.Model.Signature.Inputs[input].Name}' {ModelScorer.DescribeRow(scorer.Model.Signature.Inputs[input])}",
                _ => $"input '{scorer.Model.Signature.Inputs[input].Name}' takes a JSON array or a BLOB per row; the column holds a number",
            };
            if (error is not null)
            {
                scorer.CancelRow();
                return $"column {column}: {error}";
            }
        }

        return null;
    }

    /// <summary>The shadow table of a prediction table: its rows sit beside the served ones, one per sampled key.</summary>
    public static string ShadowTableOf(string name) => OutputTableOf(name) + "__shadow";

    /// <summary>
    /// With a shadow (docs/DEPLOYMENTS.md): replaces mad_out_&lt;name&gt;__shadow's rows by the shadow's predictions for the
    /// keys it samples, beside the version that served each, in the refresh's transaction behind a savepoint, and
    /// records what it did on the table's row. A shadow that fails to load or score rolls back alone: the served rows
    /// stand, and shadow_error says why.
    /// </summary>
    private async Task ShadowAsync(PredictionTable table, Deployment? deployment, FeatureMapping mapping, long total,
        Microsoft.Data.Sqlite.SqliteTransaction transaction, CancellationToken cancellationToken)
    {
        if (deployment?.ShadowVersion is not { } shadowVersion)
        {
            await Connection.ExecuteAsync(new CommandDefinition(
                "UPDATE mad_prediction_tables SET shadow_version = NULL, shadow_rows = NULL, shadow_error = NULL WHERE name = @name",
                new { name = table.Name }, transaction, cancellationToken: cancellationToken));
            return;
        }

        var shadowTable = SqliteDatabase.Quote(ShadowTableOf(table.Name));
        var output = OutputTableOf(table.Name);
        var declared = (await Connection.QueryAsync<(string Name, string Type)>(new CommandDefinition(
            "SELECT name, type FROM pragma_table_info(@output) ORDER BY cid", new { output }, transaction, cancellationToken: cancellationToken)))
            .ToDictionary(c => c.Name, c => c.Type, StringComparer.Ordinal);
        string Column(string name) => $"{SqliteDatabase.Quote(name)} {declared[name]}";
        var definitions = table.Key.Select(Column).Append("shadow_version INTEGER NOT NULL").Concat(table.Columns.Select(c => Column(c.Name)))
            .Concat(["served_version INTEGER NOT NULL", "scored_at TEXT NOT NULL", "error TEXT"]);
        await Connection.ExecuteAsync(new CommandDefinition(
            $"CREATE TABLE IF NOT EXISTS {shadowTable} ({string.Join(", ", definitions)}, PRIMARY KEY ({string.Join(", ", table.Key.Select(SqliteDatabase.Quote))}))",
            transaction: transaction, cancellationToken: cancellationToken));
        await Connection.ExecuteAsync(new CommandDefinition($"DELETE FROM {shadowTable}", transaction: transaction, cancellationToken: cancellationToken));

        long rows = 0;
        string? error = null;
        transaction.Save("mad_shadow");
        try
        {
            var model = await CanaryModelAsync(table, deployment.Model, shadowVersion, cancellationToken);
            (rows, _) = await ScoreIntoAsync(table, model, shadowVersion, Arms.Shadow, keys => deployment.ShadowScores(StickyBucket.KeyText(keys)),
                mapping, total, null, null, deployment, cancellationToken);
            transaction.Release("mad_shadow");
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            transaction.Rollback("mad_shadow");
            transaction.Release("mad_shadow");
            rows = 0;
            error = $"The shadow {deployment.Model}@{shadowVersion} failed: {e.Message}";
        }

        await Connection.ExecuteAsync(new CommandDefinition(
            "UPDATE mad_prediction_tables SET shadow_version = @shadowVersion, shadow_rows = @rows, shadow_error = @error WHERE name = @name",
            new { name = table.Name, shadowVersion, rows, error }, transaction, cancellationToken: cancellationToken));
    }

    /// <summary>The setting canary_agreement_percent (mad_settings, 019_m): the percent of canary keys the champion scores too.</summary>
    private async Task<double> AgreementPercentAsync(Microsoft.Data.Sqlite.SqliteTransaction transaction, CancellationToken cancellationToken)
    {
        var value = await Connection.ExecuteScalarAsync<string?>(new CommandDefinition(
            "SELECT value FROM mad_settings WHERE name = 'canary_agreement_percent'", transaction: transaction, cancellationToken: cancellationToken));
        if (value is null)
        {
            return CanaryAgreement.DefaultPercent;
        }

        return double.TryParse(value, System.Globalization.NumberStyles.Float, System.Globalization.CultureInfo.InvariantCulture, out var percent) && percent is >= 0 and <= 100
            ? percent
            : throw new ModelAsDataException(ErrorCode.InvalidArgument,
                $"The setting canary_agreement_percent is '{value}', not a percent in [0, 100], so nothing was refreshed. Fix it with: " +
                "UPDATE mad_settings SET value = '10' WHERE name = 'canary_agreement_percent';");
    }

    /// <summary>
    /// Keeps the refresh's champion-vs-canary sums on the table's row (019_m): added to the last refreshes' when they were
    /// under the same deployment (seed) and canary version, else in their place; cleared without a canary.
    /// </summary>
    private async Task RecordAgreementAsync(string name, Deployment? deployment, CanaryAgreementSums? sums, Microsoft.Data.Sqlite.SqliteTransaction transaction,
        CancellationToken cancellationToken)
    {
        if (deployment?.CanaryVersion is not { } canaryVersion || sums is null)
        {
            await Connection.ExecuteAsync(new CommandDefinition(SqliteTableSql.ClearAgreement, new { name }, transaction, cancellationToken: cancellationToken));
            return;
        }

        var previous = (await Connection.QueryAsync<(long? Seed, long? Version, long? Rows, long? Equal, string? Differences)>(new CommandDefinition(
            SqliteTableSql.Agreement, new { name }, transaction, cancellationToken: cancellationToken))).Single();
        var same = previous.Seed == deployment.Seed && previous.Version == canaryVersion;
        var differences = new Dictionary<string, double>(sums.Differences, StringComparer.Ordinal);
        if (same && previous.Differences is { } json)
        {
            foreach (var (output, sum) in JsonSerializer.Deserialize<Dictionary<string, double>>(json, SqliteAgreementJson) ?? [])
            {
                differences[output] = differences.GetValueOrDefault(output) + sum;
            }
        }

        await Connection.ExecuteAsync(new CommandDefinition(SqliteTableSql.RecordAgreement, new
        {
            name,
            seed = deployment.Seed,
            version = canaryVersion,
            rows = sums.RowsCompared + (same ? previous.Rows ?? 0 : 0),
            equal = sums.RowsEqual is { } equal ? equal + (same ? previous.Equal ?? 0 : 0) : (long?)null,
            differences = JsonSerializer.Serialize(differences, SqliteAgreementJson),
        }, transaction, cancellationToken: cancellationToken));
    }

    private static readonly JsonSerializerOptions SqliteAgreementJson = new()
    {
        NumberHandling = System.Text.Json.Serialization.JsonNumberHandling.AllowNamedFloatingPointLiterals,
    };

    /// <summary>
    /// The agreement sample of one refresh: which canary keys the champion's pass scores too, the champion's outputs it
    /// keeps for them until the canary's pass scores them, and the sums of the comparison.
    /// </summary>
    internal sealed class CanaryComparison(CanaryAgreementSums sums, Func<object[], bool> samples)
    {
        public CanaryAgreementSums Sums { get; } = sums;

        public Func<object[], bool> Samples { get; } = samples;

        public Dictionary<string, object?[]> Kept { get; } = new(StringComparer.Ordinal);
    }

    /// <summary>The canary's model, checked to decode into the table's columns.</summary>
    private async Task<OnnxModel> CanaryModelAsync(PredictionTable table, string model, int version, CancellationToken cancellationToken)
    {
        var canary = await _registry.ResolveAsync(new ModelReference(model, null, version), cancellationToken);
        var loaded = _registry.LoadModel(canary, _cache, cancellationToken);
        EnsureSameColumns(table, loaded.Signature, canary);
        return loaded;
    }

    private static void EnsureSameColumns(PredictionTable table, ModelSignature signature, ModelVersion version)
    {
        var expected = table.Columns.Select(c => (c.Type, c.Output, c.Offset)).ToList();
        var actual = signature.Columns.Select(c => (c.Type, c.Output, c.Offset)).ToList();
        if (!expected.SequenceEqual(actual))
        {
            throw new ModelAsDataException(ErrorCode.FeatureMismatch,
                $"{version} decodes into columns ({string.Join(", ", signature.Columns.Select(c => c.Name))}) that differ from {table.OutputTable}'s " +
                $"({string.Join(", ", table.Columns.Select(c => c.Name))}): create a new prediction table for it.");
        }
    }

    /// <summary>The rows of a batch as read: their keys, and either their row in the scorer or their error.</summary>
    internal sealed class PendingRows(int capacity, int keyCount)
    {
        private readonly object[][] _keys = Enumerable.Range(0, capacity * 2).Select(_ => new object[keyCount]).ToArray();
        private readonly int[] _scorerRow = new int[capacity * 2];
        private readonly string?[] _errors = new string?[capacity * 2];
        private readonly bool[] _kept = new bool[capacity * 2];

        public int Count { get; private set; }

        /// <summary>Rows scored for the canary comparison only (<see cref="Keep"/>).</summary>
        public int KeptCount { get; private set; }

        public bool IsKept(int row) => _kept[row];

        public void Keep(int row)
        {
            _kept[row] = true;
            KeptCount++;
        }

        public bool IsFull => Count == _keys.Length;

        public object[] Keys(int row) => _keys[row];

        public int ScorerRow(int row) => _scorerRow[row];

        public string? Error(int row) => _errors[row];

        public int Add(SqliteRawStatement reader)
        {
            var keys = _keys[Count];
            for (var k = 0; k < keys.Length; k++)
            {
                keys[k] = reader.GetValue(k)!;
            }

            _kept[Count] = false;
            return Count++;
        }

        public void Scored(int row, int scorerRow)
        {
            _scorerRow[row] = scorerRow;
            _errors[row] = null;
        }

        public void Fail(int row, string error)
        {
            _scorerRow[row] = -1;
            _errors[row] = error;
        }

        public void Clear() => (Count, KeptCount) = (0, 0);

        /// <summary>Forgets the row just added.</summary>
        public void Drop() => Count--;
    }

    /// <summary>One prepared INSERT into the output table, bound value by value for every row.</summary>
    private sealed class OutputWriter : IDisposable
    {
        private readonly SqliteRawStatement _insert;
        private readonly IReadOnlyList<OutputColumn> _columns;
        private readonly int _keyCount;
        private readonly ProfileCounter? _counter;
        private readonly Deployment? _shadowOf;
        private readonly CanaryComparison? _comparison;
        private readonly bool _keeps;
        private readonly int _firstOutput;
        private readonly int _error;

        /// <param name="shadowOf">Writes the shadow table's layout (keys, shadow_version, outputs, served_version,
        /// scored_at, error), each row's served version by this deployment; null: the output table's.</param>
        public OutputWriter(SqliteConnection connection, PredictionTable table, int version, string arm, ProfileCounter? counter, Deployment? shadowOf = null,
            CanaryComparison? comparison = null)
        {
            _comparison = shadowOf is null ? comparison : null;
            _keeps = arm == Arms.Champion;
            _counter = counter;
            _shadowOf = shadowOf;
            _columns = table.Columns;
            _keyCount = table.Key.Count;
            var outputs = table.Columns.Select(c => c.Name);
            var names = (shadowOf is null
                ? table.Key.Concat(outputs).Concat(TrailingColumns)
                : table.Key.Append("shadow_version").Concat(outputs).Concat(["served_version", "scored_at", "error"])).Select(SqliteDatabase.Quote).ToList();
            var values = Enumerable.Range(1, names.Count).Select(i => $"?{i}");
            var into = shadowOf is null ? table.OutputTable : ShadowTableOf(table.Name);
            _insert = new SqliteRawStatement(connection, $"INSERT INTO {SqliteDatabase.Quote(into)} ({string.Join(", ", names)}) VALUES ({string.Join(", ", values)})");
            if (shadowOf is null)
            {
                _firstOutput = _keyCount + 1;
                var trailing = _keyCount + _columns.Count + 1;
                _insert.Bind(trailing, (long)version);
                _insert.Bind(trailing + 1, SqliteTime.Now());
                _error = trailing + 2;
                _insert.Bind(trailing + 3, arm);
            }
            else
            {
                _insert.Bind(_keyCount + 1, (long)version);
                _firstOutput = _keyCount + 2;
                _insert.Bind(_keyCount + _columns.Count + 3, SqliteTime.Now());
                _error = _keyCount + _columns.Count + 4;
            }
        }

        /// <summary>Writes a batch; returns how many of its rows carry an error.</summary>
        public int Write(PendingRows batch, ScoredBatch scored)
        {
            var failed = 0;
            for (var row = 0; row < batch.Count; row++)
            {
                var keys = batch.Keys(row);
                var scorerRow = batch.ScorerRow(row);
                var error = batch.Error(row);
                if (scorerRow >= 0 && scored.Error(scorerRow) is { } runError)
                {
                    // ONNX Runtime failed on this row of a grouped batch: its error, as for values that do not fit.
                    (scorerRow, error) = (-1, runError);
                }

                if (batch.IsKept(row))
                {
                    if (scorerRow >= 0)
                    {
                        _comparison!.Kept[StickyBucket.KeyText(keys)] = _comparison.Sums.Outputs(scored, scorerRow);
                    }

                    continue;
                }

                for (var k = 0; k < keys.Length; k++)
                {
                    _insert.Bind(k + 1, keys[k]);
                }

                if (_shadowOf is not null)
                {
                    _insert.Bind(_keyCount + _columns.Count + 2, (long)_shadowOf.VersionOf(StickyBucket.KeyText(keys))); // the version that served the key
                }

                _counter?.CountOutputs(scored, scorerRow); // drift monitoring
                if (!_keeps && scorerRow >= 0 && _comparison is { Kept.Count: > 0 } comparison
                    && comparison.Kept.Remove(StickyBucket.KeyText(keys), out var champion))
                {
                    comparison.Sums.Add(champion, scored, scorerRow); // the canary's row against the champion's of the same key
                }

                for (var c = 0; c < _columns.Count; c++)
                {
                    var index = _firstOutput + c;
                    switch (scorerRow < 0 ? (ColumnType?)null : _columns[c].Type)
                    {
                        case null: _insert.Bind(index, (object?)null); break;
                        case ColumnType.Real: _insert.Bind(index, scored.GetDouble(scorerRow, c)); break;
                        case ColumnType.Integer: _insert.Bind(index, scored.GetLong(scorerRow, c)); break;
                        case ColumnType.Text: _insert.Bind(index, scored.GetValue(scorerRow, c)); break;
                        // TEXT of its digits: exact past 2^63, where INTEGER would wrap and NUMERIC affinity would round to a REAL.
                        case ColumnType.Uint64: _insert.Bind(index, ((ulong)scored.GetValue(scorerRow, c)).ToString(CultureInfo.InvariantCulture)); break;
                        // Tensors as JSON text, nested by the row's dimensions.
                        default: _insert.Bind(index, RequestPredictor.ToJson(scored.GetTensor(scorerRow, c))?.ToJsonString()); break;
                    }
                }

                _insert.Bind(_error, error);
                failed += scorerRow < 0 ? 1 : 0;
                _insert.Execute();
            }

            return failed;
        }

        public void Dispose() => _insert.Dispose();
    }
}

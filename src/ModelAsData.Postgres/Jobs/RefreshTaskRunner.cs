using System.Collections.Concurrent;
using System.Globalization;
using Dapper;
using ModelAsData.Core;
using ModelAsData.Core.Onnx;
using Npgsql;
using NpgsqlTypes;

namespace ModelAsData.Postgres.Jobs;

/// <summary>
/// Runs one claimed refresh task: reads its key range by binary COPY, scores it in batches, writes the predictions by
/// binary COPY into the job's build table, and completes the task in the same transaction (fenced on the lease
/// token), so its rows commit exactly once. Reading, scoring and writing are three threads handing a few batches
/// round (read | score | write), so memory stays flat however large the range. A row whose features cannot be
/// converted is written with its error; the rest of its batch is scored. Thread-safe: each call has its own state.
/// Does not own the data source or the cache.
/// </summary>
public sealed class RefreshTaskRunner
{
    private const int BatchesInFlight = 3;

    private readonly NpgsqlDataSource _dataSource;
    private readonly ModelCache _cache;
    private readonly int? _batchSize;

    /// <param name="batchSize">Rows per ONNX Runtime call; null: the model's preferred size.</param>
    public RefreshTaskRunner(NpgsqlDataSource dataSource, ModelCache cache, int? batchSize = null)
    {
        _dataSource = dataSource;
        _cache = cache;
        _batchSize = batchSize;
    }

    /// <summary>
    /// Runs the task to completion and commits it; a lost lease throws a <see cref="PostgresException"/> with
    /// <see cref="TableSql.LeaseLostState"/> after rolling the rows back. Cancelling rolls back too.
    /// </summary>
    public async Task<RefreshTaskResult> RunAsync(RefreshTask task, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(task);
        TaskPlan plan;
        byte[]? bytes = null;
        await using (var connection = await _dataSource.OpenConnectionAsync(cancellationToken))
        {
            plan = TaskPlan.Parse(await connection.ExecuteScalarAsync<string>(new CommandDefinition(TableSql.Plan, new { task = task.TaskId }, cancellationToken: cancellationToken))
                ?? throw new InvalidDataException($"No plan for {task}."));
            if (!_cache.Contains(task.Sha256))
            {
                bytes = await connection.ExecuteScalarAsync<byte[]>(new CommandDefinition(TableSql.Bytes, new { model = task.Model, version = task.Version }, cancellationToken: cancellationToken));
            }
        }

        var model = _cache.GetOrLoad(task.Sha256, () => bytes ?? throw new InvalidOperationException($"Model {task.Model}@{task.Version} was not loaded."));
        if (model.Signature.Columns.Count != plan.Columns.Count)
        {
            throw new ModelAsDataException(ErrorCode.FeatureMismatch,
                $"{task.Model}@{task.Version} decodes into {model.Signature.Columns.Count} columns; {task.Table} has {plan.Columns.Count}.");
        }

        var keys = plan.KeyColumns.Select((name, i) => KeyColumn.For(name, plan.KeyTypes[i])).ToArray();
        var features = plan.FeatureColumns.Select((name, i) => FeatureColumn.For(name, plan.FeatureTypes[i])).ToArray();

        await using var reader = await _dataSource.OpenConnectionAsync(cancellationToken);
        await using var writer = await _dataSource.OpenConnectionAsync(cancellationToken);
        await using var transaction = await writer.BeginTransactionAsync(cancellationToken);
        var columns = plan.KeyColumns.Select(Quote).Concat(plan.Columns.Select(c => Quote(c.Name))).Concat(["model_version", "scored_at", "error"]);
        long rows, failed;
        using (var stop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken))
        {
            var pipeline = new Pipeline(model, _batchSize ?? model.PreferredBatchSize, keys, features, plan, task.Version, stop);
            try
            {
                using var exporter = await reader.BeginBinaryExportAsync($"COPY ({plan.Query}) TO STDOUT (FORMAT BINARY)", cancellationToken);
                using var importer = await writer.BeginBinaryImportAsync($"COPY {plan.BuildTable} ({string.Join(", ", columns)}) FROM STDIN (FORMAT BINARY)", cancellationToken);
                (rows, failed) = await pipeline.RunAsync(exporter, importer);
                await importer.CompleteAsync(cancellationToken);
            }
            finally
            {
                pipeline.Dispose();
            }
        }

        var state = await writer.ExecuteScalarAsync<string>(new CommandDefinition(TableSql.Complete,
            new { task = task.TaskId, token = task.LeaseToken, rows, failed }, transaction, commandTimeout: 0, cancellationToken: cancellationToken));
        await transaction.CommitAsync(cancellationToken);
        return new RefreshTaskResult(rows, failed, state ?? "running");
    }

    private static string Quote(string identifier) => "\"" + identifier.Replace("\"", "\"\"", StringComparison.Ordinal) + "\"";

    /// <summary>Three stages on their own threads, handing <see cref="BatchesInFlight"/> batches round.</summary>
    private sealed class Pipeline : IDisposable
    {
        private readonly Batch[] _batches;
        private readonly KeyColumn[] _keys;
        private readonly FeatureColumn[] _features;
        private readonly TaskPlan _plan;
        private readonly int _version;
        private readonly CancellationTokenSource _stop;
        private readonly DateTime _scoredAt = DateTime.UtcNow;
        private readonly bool[] _slotTakesFloat;

        public Pipeline(OnnxModel model, int batchSize, KeyColumn[] keys, FeatureColumn[] features, TaskPlan plan, int version, CancellationTokenSource stop)
        {
            _keys = keys;
            _features = features;
            _plan = plan;
            _version = version;
            _stop = stop;
            _batches = Enumerable.Range(0, BatchesInFlight).Select(_ => new Batch(model.CreateScorer(batchSize), keys.Length, features.Length)).ToArray();
            _slotTakesFloat = model.Signature.Inputs.SelectMany(i => Enumerable.Repeat(i.Type == FeatureType.Float, i.Width)).ToArray();
        }

        public async Task<(long Rows, long Failed)> RunAsync(NpgsqlBinaryExporter exporter, NpgsqlBinaryImporter importer)
        {
            using var free = new BlockingCollection<Batch>();
            using var toScore = new BlockingCollection<Batch>();
            using var toWrite = new BlockingCollection<Batch>();
            foreach (var batch in _batches)
            {
                free.Add(batch);
            }

            var token = _stop.Token;
            long rows = 0, failed = 0;
            var reading = Stage(() =>
            {
                try
                {
                    bool more;
                    do
                    {
                        var batch = free.Take(token);
                        more = Fill(exporter, batch);
                        (batch.Count > 0 ? toScore : free).Add(batch, token);
                    }
                    while (more);
                }
                finally
                {
                    toScore.CompleteAdding();
                }
            });
            var scoring = Stage(() =>
            {
                try
                {
                    foreach (var batch in toScore.GetConsumingEnumerable(token))
                    {
                        batch.Scored = batch.Scorer.Score(token);
                        toWrite.Add(batch, token);
                    }
                }
                finally
                {
                    toWrite.CompleteAdding();
                }
            });
            var writing = Stage(() =>
            {
                foreach (var batch in toWrite.GetConsumingEnumerable(token))
                {
                    failed += Write(importer, batch);
                    rows += batch.Count;
                    free.Add(batch, token);
                }
            });

            try
            {
                await Task.WhenAll(reading, scoring, writing);
            }
            catch
            {
                // The first real failure, not the cancellations it caused in the other stages.
                var first = new[] { reading, scoring, writing }.Select(t => t.Exception?.InnerException).FirstOrDefault(e => e is not null and not OperationCanceledException);
                if (first is not null)
                {
                    System.Runtime.ExceptionServices.ExceptionDispatchInfo.Throw(first);
                }

                throw;
            }

            return (rows, failed);
        }

        public void Dispose()
        {
            foreach (var batch in _batches)
            {
                batch.Scorer.Dispose();
            }
        }

        private Task Stage(Action work) => Task.Factory.StartNew(() =>
        {
            try
            {
                work();
            }
            catch
            {
                _stop.Cancel(); // unblock the other stages
                throw;
            }
        }, CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default);

        /// <summary>Reads rows until the batch is full; returns whether the source may have more.</summary>
        private bool Fill(NpgsqlBinaryExporter exporter, Batch batch)
        {
            batch.Clear();
            var scorer = batch.Scorer;
            var slots = _plan.Slots;
            while (!batch.IsFull)
            {
                if (exporter.StartRow() == -1)
                {
                    return false;
                }

                var row = batch.Count;
                for (var k = 0; k < _keys.Length; k++)
                {
                    _keys[k].Read(exporter, batch, k, row);
                }

                for (var f = 0; f < _features.Length; f++)
                {
                    _features[f].Read(exporter, batch, f);
                }

                scorer.BeginRow();
                string? error = null;
                for (var slot = 0; slot < slots.Length && error is null; slot++)
                {
                    var f = slots[slot];
                    var column = _features[f];
                    if (_slotTakesFloat[slot] && !batch.IsNull[f] && batch.Text[f] is null)
                    {
                        scorer.SetFloat(slot, (float)batch.Number[f]); // the fast path: a number into a float input
                        continue;
                    }

                    error = batch.IsNull[f] ? $"null cannot feed {scorer.SlotName(slot)}"
                        : batch.Text[f] is { } text ? SetText(scorer, slot, text)
                        : scorer.Set(slot, batch.Number[f]);
                    if (error is not null)
                    {
                        error = $"column {column.Name}: {error}";
                    }
                }

                if (error is null)
                {
                    batch.ScorerRow[row] = scorer.Count;
                    batch.Errors[row] = null;
                    scorer.EndRow();
                }
                else
                {
                    scorer.CancelRow();
                    batch.ScorerRow[row] = -1;
                    batch.Errors[row] = error;
                }

                batch.Count++;
            }

            return true;
        }

        /// <summary>Text feeds a string input as it is; a numeric input when it parses as a number.</summary>
        private static string? SetText(ModelScorer scorer, int slot, string text)
        {
            var error = scorer.Set(slot, text);
            if (error is null)
            {
                return null;
            }

            return double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out var number) ? scorer.Set(slot, number) : error;
        }

        private int Write(NpgsqlBinaryImporter importer, Batch batch)
        {
            var failed = 0;
            var columns = _plan.Columns;
            var scored = batch.Scored;
            for (var row = 0; row < batch.Count; row++)
            {
                importer.StartRow();
                for (var k = 0; k < _keys.Length; k++)
                {
                    _keys[k].Write(importer, batch, k, row);
                }

                var scorerRow = batch.ScorerRow[row];
                for (var c = 0; c < columns.Count; c++)
                {
                    if (scorerRow < 0)
                    {
                        importer.WriteNull();
                        continue;
                    }

                    switch (columns[c].Type)
                    {
                        case ColumnType.Real: importer.Write((float)scored.GetDouble(scorerRow, c), NpgsqlDbType.Real); break;
                        case ColumnType.Integer: importer.Write((long)scored.GetDouble(scorerRow, c), NpgsqlDbType.Bigint); break;
                        case ColumnType.Text: importer.Write((string)scored.GetValue(scorerRow, c), NpgsqlDbType.Text); break;
                        default: importer.Write(Array.ConvertAll(scored.GetArray(scorerRow, c), d => (float)d), NpgsqlDbType.Array | NpgsqlDbType.Real); break;
                    }
                }

                importer.Write(_version, NpgsqlDbType.Integer);
                importer.Write(_scoredAt, NpgsqlDbType.TimestampTz);
                if (batch.Errors[row] is { } error)
                {
                    importer.Write(error, NpgsqlDbType.Text);
                    failed++;
                }
                else
                {
                    importer.WriteNull();
                }
            }

            return failed;
        }
    }

    /// <summary>One batch in flight: its rows' keys and features as read, its scorer, and each row's scorer row or error.</summary>
    private sealed class Batch
    {
        public Batch(ModelScorer scorer, int keyCount, int featureCount)
        {
            Scorer = scorer;
            Capacity = scorer.Capacity * 2; // rows with an error take no place in the scorer
            Keys = Enumerable.Range(0, keyCount).Select(_ => new object?[Capacity]).ToArray();
            LongKeys = Enumerable.Range(0, keyCount).Select(_ => new long[Capacity]).ToArray();
            ScorerRow = new int[Capacity];
            Errors = new string?[Capacity];
            Number = new double[featureCount];
            Text = new string?[featureCount];
            IsNull = new bool[featureCount];
        }

        public ModelScorer Scorer { get; }

        public int Capacity { get; }

        public int Count { get; set; }

        public bool IsFull => Count == Capacity || Scorer.IsFull;

        public object?[][] Keys { get; }

        /// <summary>Keys of bigint columns, unboxed (the common case).</summary>
        public long[][] LongKeys { get; }

        public int[] ScorerRow { get; }

        public string?[] Errors { get; }

        public ScoredBatch Scored { get; set; }

        // The current row's feature values, by feature column.
        public double[] Number { get; }

        public string?[] Text { get; }

        public bool[] IsNull { get; }

        public void Clear()
        {
            Count = 0;
            Scorer.Clear();
        }
    }

    /// <summary>A key column, read and written in its own type.</summary>
    private sealed class KeyColumn(string name, NpgsqlDbType type)
    {
        public string Name { get; } = name;

        public static KeyColumn For(string name, string typeName)
        {
            var bare = typeName.Split('(')[0].Trim();
            var type = bare switch
            {
                "bigint" => NpgsqlDbType.Bigint,
                "integer" => NpgsqlDbType.Integer,
                "smallint" => NpgsqlDbType.Smallint,
                "text" => NpgsqlDbType.Text,
                "character varying" => NpgsqlDbType.Varchar,
                "character" => NpgsqlDbType.Char,
                "uuid" => NpgsqlDbType.Uuid,
                "numeric" => NpgsqlDbType.Numeric,
                "date" => NpgsqlDbType.Date,
                "timestamp without time zone" => NpgsqlDbType.Timestamp,
                "timestamp with time zone" => NpgsqlDbType.TimestampTz,
                "boolean" => NpgsqlDbType.Boolean,
                "real" => NpgsqlDbType.Real,
                "double precision" => NpgsqlDbType.Double,
                _ => new NpgsqlParameter { DataTypeName = bare }.NpgsqlDbType,
            };
            if (type == NpgsqlDbType.Unknown)
            {
                throw new ModelAsDataException(ErrorCode.InvalidArgument, $"Key column '{name}' has type {typeName}, which refresh cannot copy; key on a column of a common type.");
            }

            return new KeyColumn(name, type);
        }

        /// <summary>Reads the row's key into the batch: bigint unboxed, anything else as an object (null stays null and the output's NOT NULL refuses it).</summary>
        public void Read(NpgsqlBinaryExporter exporter, Batch batch, int key, int row)
        {
            if (exporter.IsNull)
            {
                exporter.Skip();
                batch.Keys[key][row] = null;
                batch.LongKeys[key][row] = long.MinValue;
                return;
            }

            batch.Keys[key][row] = type switch
            {
                NpgsqlDbType.Bigint => s_unboxed,
                NpgsqlDbType.Integer => exporter.Read<int>(type),
                NpgsqlDbType.Text or NpgsqlDbType.Varchar => exporter.Read<string>(type),
                _ => exporter.Read<object>(type),
            };
            if (type == NpgsqlDbType.Bigint)
            {
                batch.LongKeys[key][row] = exporter.Read<long>(type);
            }
        }

        public void Write(NpgsqlBinaryImporter importer, Batch batch, int key, int row)
        {
            switch (batch.Keys[key][row])
            {
                case null: importer.WriteNull(); break;
                case Unboxed: importer.Write(batch.LongKeys[key][row], type); break;
                case int i: importer.Write(i, type); break;
                case string s: importer.Write(s, type); break;
                case { } value: importer.Write(value, type); break;
            }
        }

        private static readonly Unboxed s_unboxed = new();

        /// <summary>Marks a key whose value is in <see cref="Batch.LongKeys"/>.</summary>
        private sealed class Unboxed;
    }

    /// <summary>A feature column in the type <c>mad.task_plan</c> reads it in: a number, a boolean or text.</summary>
    private sealed class FeatureColumn(string name, string type)
    {
        public string Name { get; } = name;

        public static FeatureColumn For(string name, string type) => new(name, type);

        public void Read(NpgsqlBinaryExporter exporter, Batch batch, int index)
        {
            batch.Text[index] = null;
            if (exporter.IsNull)
            {
                exporter.Skip();
                batch.IsNull[index] = true;
                return;
            }

            batch.IsNull[index] = false;
            switch (type)
            {
                case "real": batch.Number[index] = exporter.Read<float>(NpgsqlDbType.Real); break;
                case "double precision": batch.Number[index] = exporter.Read<double>(NpgsqlDbType.Double); break;
                case "smallint": batch.Number[index] = exporter.Read<short>(NpgsqlDbType.Smallint); break;
                case "integer": batch.Number[index] = exporter.Read<int>(NpgsqlDbType.Integer); break;
                case "bigint": batch.Number[index] = exporter.Read<long>(NpgsqlDbType.Bigint); break;
                case "boolean": batch.Number[index] = exporter.Read<bool>(NpgsqlDbType.Boolean) ? 1 : 0; break;
                default: batch.Text[index] = exporter.Read<string>(NpgsqlDbType.Text); break;
            }
        }
    }
}

using System.Collections.Concurrent;
using System.Globalization;
using ModelAsData.Core;
using ModelAsData.Core.Onnx;
using Npgsql;
using NpgsqlTypes;

namespace ModelAsData.Postgres.Jobs;

/// <summary>The read | score | write pipeline of one task, and the batches, keys and features it hands round.</summary>
public sealed partial class RefreshTaskRunner
{
    /// <summary>
    /// Three stages on their own threads (four with a shadow, which scores on its own), handing <see cref="BatchesInFlight"/>
    /// batches round (one more with a shadow). The write stage owns the
    /// writer's COPY into the build table; with a shadow, it keeps the shadow's rows in a typed buffer and, every
    /// <see cref="ShadowBuffer.FlushRows"/> rows, ends that COPY, copies them into mad_shadow.&lt;table&gt; and begins the
    /// next (a connection holds one COPY at a time), so the shadow's rows are written while the next batches are read
    /// and scored, in the task's transaction; the last ones follow the task's served rows.
    /// </summary>
    private sealed class Pipeline : IDisposable
    {
        private readonly NpgsqlConnection _writer;
        private readonly string _copyIn;
        private readonly string? _shadowTable;
        private readonly long _job;
        private readonly bool _hashesKeys;
        private readonly ShadowBuffer? _shadowBuffer;
        private NpgsqlBinaryImporter? _importer;
        private readonly Batch[] _batches;
        private readonly KeyColumn[] _keys;
        private readonly FeatureColumn[] _features;
        private readonly TaskPlan _plan;
        private readonly int _version;
        private readonly CancellationTokenSource _stop;
        private readonly DateTime _scoredAt = DateTime.UtcNow;
        private readonly FeatureSlots _slots;
        private readonly JobCanary? _canary;
        private readonly FeatureSlots? _canarySlots;
        private readonly Core.Monitoring.ProfileCounter? _counter;
        private readonly JobShadow? _shadow;
        private readonly FeatureSlots? _shadowSlots;
        private readonly ShadowRows? _shadowRows;

        /// <param name="copyIn">The COPY into the build table, begun again after each batch's shadow rows.</param>
        /// <param name="shadowTable">mad_shadow.&lt;table&gt;, quoted, when the task has a shadow.</param>
        public Pipeline(OnnxModel model, int batchSize, KeyColumn[] keys, FeatureColumn[] features, TaskPlan plan, int version, JobCanary? canary, CancellationTokenSource stop,
            Core.Monitoring.ProfileCounter? counter, NpgsqlConnection writer, string copyIn, long job, JobShadow? shadow, ShadowRows? shadowRows, string? shadowTable)
        {
            _writer = writer;
            _copyIn = copyIn;
            _job = job;
            _shadowTable = shadowTable;
            _shadow = shadowRows is null ? null : shadow;
            // A key is hashed only for an answer that depends on it: a canary or shadow at 100 % takes every key.
            _hashesKeys = (canary is not null && (Core.Deployments.StickyBucket.NeedsHash(canary.Percent)
                                                 || (canary.Agreement is not null && Core.Deployments.StickyBucket.NeedsHash(canary.AgreementPercent))))
                          || _shadow is { NeedsHash: true };
            _shadowRows = shadowRows;
            _canary = canary;
            _counter = counter;
            _keys = keys;
            _features = features;
            _plan = plan;
            _version = version;
            _stop = stop;
            // A shadow scores on a stage of its own (read | score | score the shadow | write): one more batch in flight.
            _batches = Enumerable.Range(0, BatchesInFlight + (_shadow is null ? 0 : 1))
                .Select(_ => new Batch(model.CreateScorer(batchSize), canary?.Model.CreateScorer(batchSize), _shadow?.Model.CreateScorer(batchSize), keys.Length, features.Length)).ToArray();
            _shadowBuffer = _shadow is null ? null : new ShadowBuffer(keys, plan.Columns, _batches[0].Capacity);
            _slots = new FeatureSlots(model, plan.Slots, plan.FeatureColumns, plan.FeatureTypes);
            _canarySlots = canary is null ? null : new FeatureSlots(canary.Model, plan.Slots, plan.FeatureColumns, plan.FeatureTypes);
            _shadowSlots = _shadow is null ? null : new FeatureSlots(_shadow.Model, plan.Slots, plan.FeatureColumns, plan.FeatureTypes);
        }

        public async Task<(long Rows, long Failed)> RunAsync(NpgsqlBinaryExporter exporter, CancellationToken cancellationToken)
        {
            _importer = await _writer.BeginBinaryImportAsync(_copyIn, cancellationToken);
            using var free = new BlockingCollection<Batch>();
            using var toScore = new BlockingCollection<Batch>();
            using var toWrite = new BlockingCollection<Batch>();
            using var toShadow = new BlockingCollection<Batch>();
            // With a shadow, its model scores batch n while the served models score batch n + 1 (ONNX Runtime runs one
            // thread per call, so the two calls take two cores when there are).
            var scored = _shadow is null ? toWrite : toShadow;
            foreach (var batch in _batches)
            {
                free.Add(batch, CancellationToken.None);
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
                        if (batch.CanaryScorer is { Count: > 0 } canaryScorer)
                        {
                            batch.CanaryScored = canaryScorer.Score(token);
                        }

                        scored.Add(batch, token);
                    }
                }
                finally
                {
                    scored.CompleteAdding();
                }
            });
            var shadowScoring = _shadow is null ? Task.CompletedTask : Stage(() =>
            {
                try
                {
                    foreach (var batch in toShadow.GetConsumingEnumerable(token))
                    {
                        ScoreShadow(batch, token);
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
                    failed += Write(_importer!, batch);
                    if (batch.ShadowCount > 0)
                    {
                        _shadowBuffer!.Append(batch, batch.ShadowScored, _version, _canary?.Version);
                        if (_shadowBuffer.IsFull)
                        {
                            FlushShadow(last: false);
                        }
                    }

                    rows += batch.Count;
                    free.Add(batch, token);
                }
            });

            try
            {
                await Task.WhenAll(reading, scoring, shadowScoring, writing);
            }
            catch
            {
                // The first real failure, not the cancellations it caused in the other stages.
                var first = new[] { reading, scoring, shadowScoring, writing }.Select(t => t.Exception?.InnerException).FirstOrDefault(e => e is not null and not OperationCanceledException);
                if (first is not null)
                {
                    System.Runtime.ExceptionServices.ExceptionDispatchInfo.Throw(first);
                }

                throw;
            }

            if (_shadowBuffer is { Count: > 0 })
            {
                FlushShadow(last: true); // the task's last shadow rows, after its served rows
            }
            else
            {
                await _importer!.CompleteAsync(cancellationToken);
            }

            return (rows, failed);
        }

        public void Dispose()
        {
            _importer?.Dispose(); // an unfinished COPY is cancelled
            foreach (var batch in _batches)
            {
                batch.Scorer.Dispose();
                batch.CanaryScorer?.Dispose();
                batch.ShadowScorer?.Dispose();
            }
        }

        /// <summary>
        /// Scores the batch's shadow rows; a shadow that fails stops the task with a <see cref="ShadowFailedException"/>,
        /// which runs it again without the shadow (its rows are dropped, the error kept for the job): it never fails
        /// the served rows.
        /// </summary>
        private void ScoreShadow(Batch batch, CancellationToken token)
        {
            if (batch.ShadowScorer is not { Count: > 0 } shadowScorer)
            {
                return;
            }

            try
            {
                batch.ShadowScored = shadowScorer.Score(token);
            }
            catch (Exception e) when (e is not OperationCanceledException)
            {
                throw new ShadowFailedException($"The shadow (version {_shadow!.Version}) failed to score: {e.Message}", e);
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

                // The deployment's arm of this row's key (docs/DEPLOYMENTS.md); without a canary, the champion.
                // Without a hash to compute (no canary or shadow, or at 100 %) no key text either: StickyBucket.InCanary
                // answers at 100 % (and 0 %) without reading the key.
                var keyText = _hashesKeys ? KeyText(batch, row) : null;
                var canary = _canary is not null && _canary.Serves(keyText!);
                SetShadow(batch, row, keyText);
                batch.Canary[row] = canary;
                var scorer = canary ? batch.CanaryScorer! : batch.Scorer;
                // Drift monitoring, on this (the read) thread: each arm's rows against its own version's baseline.
                (canary ? _canary!.Counter : _counter)?.CountInputs(batch.IsNull, batch.Number, batch.Text);

                scorer.BeginRow();
                var error = (canary ? _canarySlots! : _slots).Set(scorer, batch.IsNull, batch.Number, batch.Text, batch.Tensor);
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

                SetAgreement(batch, row, canary && error is null, keyText);
                batch.Count++;
            }

            return true;
        }

        /// <summary>
        /// Puts a canary row into the champion's scorer too when its key is in the agreement sample (043_2): it is
        /// scored with the champion's rows of the batch, compared when written, and never written itself.
        /// </summary>
        private void SetAgreement(Batch batch, int row, bool scoredCanary, string? keyText)
        {
            batch.AgreementRow[row] = -1;
            if (!scoredCanary || !_canary!.Compares(keyText!))
            {
                return;
            }

            var scorer = batch.Scorer;
            scorer.BeginRow();
            if (_slots.Set(scorer, batch.IsNull, batch.Number, batch.Text, batch.Tensor) is null)
            {
                batch.AgreementRow[row] = scorer.Count;
                scorer.EndRow();
            }
            else
            {
                scorer.CancelRow(); // the champion cannot read the row: not compared
            }
        }

        /// <summary>Puts the row into the shadow's scorer too when the shadow samples its key (the canary's rule, its own percent).</summary>
        private void SetShadow(Batch batch, int row, string? keyText)
        {
            if (_shadow is null || !_shadow.Samples(keyText!))
            {
                batch.ShadowRow[row] = -2;
                return;
            }

            batch.ShadowCount++;
            var scorer = batch.ShadowScorer!;
            scorer.BeginRow();
            var error = _shadowSlots!.Set(scorer, batch.IsNull, batch.Number, batch.Text, batch.Tensor);
            if (error is null)
            {
                batch.ShadowRow[row] = scorer.Count;
                batch.ShadowErrors[row] = null;
                scorer.EndRow();
            }
            else
            {
                scorer.CancelRow();
                batch.ShadowRow[row] = -1;
                batch.ShadowErrors[row] = error;
            }
        }

        /// <summary>
        /// Copies the kept shadow rows into mad_shadow.&lt;table&gt; between two COPYs of the served rows (after the last
        /// one when <paramref name="last"/>). A COPY the server refuses stops the task with a
        /// <see cref="ShadowFailedException"/> (it is run again without the shadow).
        /// </summary>
        private void FlushShadow(bool last)
        {
            _importer!.Complete();
            _importer.Dispose();
            _importer = null;
            var rows = _shadowBuffer!.Count;
            try
            {
                using var importer = _writer.BeginBinaryImport(ShadowCopyIn());
                _shadowBuffer.WriteTo(importer, _shadow!.Version, _scoredAt, _job);
                importer.Complete();
            }
            catch (PostgresException e)
            {
                throw new ShadowFailedException($"The shadow's rows could not be written to {_shadowTable}: {e.MessageText}", e);
            }

            _shadowRows!.Written += rows;
            if (!last)
            {
                _importer = _writer.BeginBinaryImport(_copyIn);
            }
        }

        private string ShadowCopyIn() => _shadowCopyIn ??=
            $"COPY {_shadowTable} ({string.Join(", ", _plan.KeyColumns.Select(Quote).Append("shadow_version").Concat(_plan.Columns.Select(c => Quote(c.Name))).Concat(["served_version", "scored_at", "error", "job"]))}) FROM STDIN (FORMAT BINARY)";

        private string? _shadowCopyIn;

        /// <summary>A row's output columns, typed (NULL for each when the row has no scorer row: it failed).</summary>
        private static void WriteOutputs(NpgsqlBinaryImporter importer, IReadOnlyList<OutputColumn> columns, ScoredBatch scored, int scorerRow)
        {
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
                    case ColumnType.Integer: importer.Write(scored.GetLong(scorerRow, c), NpgsqlDbType.Bigint); break;
                    case ColumnType.Text: importer.Write((string)scored.GetValue(scorerRow, c), NpgsqlDbType.Text); break;
                    // numeric(20,0): a decimal holds every uint64 exactly.
                    case ColumnType.Uint64: importer.Write((decimal)(ulong)scored.GetValue(scorerRow, c), NpgsqlDbType.Numeric); break;
                    // An array column of the output's element type, with the row's dimensions (PostgresArrays writes its binary form).
                    default: importer.Write(PostgresArrays.Write(scored.GetTensor(scorerRow, c)), NpgsqlDbType.Bytea); break;
                }
            }
        }

        /// <summary>The row's key in its canonical text (StickyBucket.KeyText), as mad.bucket hashes it.</summary>
        private string KeyText(Batch batch, int row)
        {
            if (_keys.Length == 1 && batch.Keys[0][row] is KeyColumn.Unboxed)
            {
                return batch.LongKeys[0][row].ToString(CultureInfo.InvariantCulture);
            }

            var values = new object?[_keys.Length];
            for (var k = 0; k < _keys.Length; k++)
            {
                values[k] = batch.Keys[k][row] is KeyColumn.Unboxed ? batch.LongKeys[k][row] : batch.Keys[k][row];
            }

            return Core.Deployments.StickyBucket.KeyText(values);
        }

        private int Write(NpgsqlBinaryImporter importer, Batch batch)
        {
            var failed = 0;
            var columns = _plan.Columns;
            for (var row = 0; row < batch.Count; row++)
            {
                var canary = batch.Canary[row];
                var scored = canary ? batch.CanaryScored : batch.Scored;
                importer.StartRow();
                for (var k = 0; k < _keys.Length; k++)
                {
                    _keys[k].Write(importer, batch, k, row);
                }

                var scorerRow = batch.ScorerRow[row];
                var error = batch.Errors[row];
                if (scorerRow >= 0 && scored.Error(scorerRow) is { } runError)
                {
                    // ONNX Runtime failed on this row of a grouped batch: its error, as for values that do not fit.
                    (scorerRow, error) = (-1, runError);
                }

                (canary ? _canary!.Counter : _counter)?.CountOutputs(scored, scorerRow); // drift monitoring, on this (the write) thread
                WriteOutputs(importer, columns, scored, scorerRow);

                if (canary && batch.AgreementRow[row] >= 0)
                {
                    _canary!.Agreement!.Add(batch.Scored, batch.AgreementRow[row], scored, scorerRow); // on this (the write) thread only
                }

                importer.Write(canary ? _canary!.Version : _version, NpgsqlDbType.Integer);
                importer.Write(_scoredAt, NpgsqlDbType.TimestampTz);
                if (error is not null)
                {
                    importer.Write(error, NpgsqlDbType.Text);
                    failed++;
                }
                else
                {
                    importer.WriteNull();
                }

                importer.Write(canary ? "canary" : "champion", NpgsqlDbType.Text);
            }

            return failed;
        }
    }
}

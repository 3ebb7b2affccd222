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
        private readonly FeatureSlots _slots;
        private readonly JobCanary? _canary;
        private readonly FeatureSlots? _canarySlots;
        private readonly Core.Monitoring.ProfileCounter? _counter;
        private readonly JobShadow? _shadow;
        private readonly FeatureSlots? _shadowSlots;
        private readonly ShadowRows? _shadowRows;

        public Pipeline(OnnxModel model, int batchSize, KeyColumn[] keys, FeatureColumn[] features, TaskPlan plan, int version, JobCanary? canary, CancellationTokenSource stop,
            Core.Monitoring.ProfileCounter? counter, JobShadow? shadow = null, ShadowRows? shadowRows = null)
        {
            _shadow = shadowRows is null ? null : shadow;
            _shadowRows = shadowRows;
            _canary = canary;
            _counter = counter;
            _keys = keys;
            _features = features;
            _plan = plan;
            _version = version;
            _stop = stop;
            _batches = Enumerable.Range(0, BatchesInFlight)
                .Select(_ => new Batch(model.CreateScorer(batchSize), canary?.Model.CreateScorer(batchSize), _shadow?.Model.CreateScorer(batchSize), keys.Length, features.Length)).ToArray();
            _slots = new FeatureSlots(model, plan.Slots, plan.FeatureColumns, plan.FeatureTypes);
            _canarySlots = canary is null ? null : new FeatureSlots(canary.Model, plan.Slots, plan.FeatureColumns, plan.FeatureTypes);
            _shadowSlots = _shadow is null ? null : new FeatureSlots(_shadow.Model, plan.Slots, plan.FeatureColumns, plan.FeatureTypes);
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
                        if (batch.CanaryScorer is { Count: > 0 } canaryScorer)
                        {
                            batch.CanaryScored = canaryScorer.Score(token);
                        }

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
                batch.CanaryScorer?.Dispose();
                batch.ShadowScorer?.Dispose();
            }
        }

        /// <summary>
        /// Scores the batch's shadow rows; a shadow that fails stops scoring (its rows are dropped, the error kept for
        /// the job) and never fails the served rows.
        /// </summary>
        private void ScoreShadow(Batch batch, CancellationToken token)
        {
            if (batch.ShadowScorer is not { Count: > 0 } shadowScorer || _shadowRows is not { Error: null })
            {
                return;
            }

            try
            {
                batch.ShadowScored = shadowScorer.Score(token);
            }
            catch (Exception e) when (e is not OperationCanceledException)
            {
                _shadowRows.Error = $"The shadow (version {_shadow!.Version}) failed to score: {e.Message}";
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
                var keyText = _canary is null && _shadow is null ? null : KeyText(batch, row);
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
            if (_shadow is null || _shadowRows is not { Error: null } || !_shadow.Samples(keyText!))
            {
                batch.ShadowRow[row] = -2;
                return;
            }

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

        /// <summary>Keeps the batch's shadow rows (keys, the shadow's outputs, the version that served the key) for the shadow table.</summary>
        private void KeepShadow(Batch batch, int row, int served)
        {
            var shadowRow = batch.ShadowRow[row];
            if (shadowRow == -2 || _shadowRows is not { Error: null } rows)
            {
                return;
            }

            var keys = new object?[_keys.Length];
            for (var k = 0; k < _keys.Length; k++)
            {
                keys[k] = KeyColumn.Value(batch, k, row);
            }

            var columns = _plan.Columns;
            var outputs = new object?[columns.Count];
            var error = batch.ShadowErrors[row];
            if (shadowRow >= 0 && batch.ShadowScored.Error(shadowRow) is { } runError)
            {
                (shadowRow, error) = (-1, runError);
            }

            if (shadowRow >= 0)
            {
                var scored = batch.ShadowScored;
                for (var c = 0; c < columns.Count; c++)
                {
                    outputs[c] = columns[c].Type switch
                    {
                        ColumnType.Real => (float)scored.GetDouble(shadowRow, c),
                        ColumnType.Integer => (long)scored.GetDouble(shadowRow, c),
                        ColumnType.Text => (string)scored.GetValue(shadowRow, c),
                        ColumnType.Uint64 => (decimal)(ulong)scored.GetValue(shadowRow, c),
                        _ => PostgresArrays.Write(scored.GetTensor(shadowRow, c)),
                    };
                }
            }

            rows.Rows.Add((keys, served, outputs, error));
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
                        // numeric(20,0): a decimal holds every uint64 exactly.
                        case ColumnType.Uint64: importer.Write((decimal)(ulong)scored.GetValue(scorerRow, c), NpgsqlDbType.Numeric); break;
                        // An array column of the output's element type, with the row's dimensions (PostgresArrays writes its binary form).
                        default: importer.Write(PostgresArrays.Write(scored.GetTensor(scorerRow, c)), NpgsqlDbType.Bytea); break;
                    }
                }

                if (canary && batch.AgreementRow[row] >= 0)
                {
                    _canary!.Agreement!.Add(batch.Scored, batch.AgreementRow[row], scored, scorerRow); // on this (the write) thread only
                }

                KeepShadow(batch, row, canary ? _canary!.Version : _version);
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

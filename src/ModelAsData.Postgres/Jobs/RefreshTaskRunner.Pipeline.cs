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

        public Pipeline(OnnxModel model, int batchSize, KeyColumn[] keys, FeatureColumn[] features, TaskPlan plan, int version, JobCanary? canary, CancellationTokenSource stop,
            Core.Monitoring.ProfileCounter? counter)
        {
            _canary = canary;
            _counter = counter;
            _keys = keys;
            _features = features;
            _plan = plan;
            _version = version;
            _stop = stop;
            _batches = Enumerable.Range(0, BatchesInFlight)
                .Select(_ => new Batch(model.CreateScorer(batchSize), canary?.Model.CreateScorer(batchSize), keys.Length, features.Length)).ToArray();
            _slots = new FeatureSlots(model, plan.Slots, plan.FeatureColumns, plan.FeatureTypes);
            _canarySlots = canary is null ? null : new FeatureSlots(canary.Model, plan.Slots, plan.FeatureColumns, plan.FeatureTypes);
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
                var canary = _canary is not null && _canary.Serves(KeyText(batch, row));
                batch.Canary[row] = canary;
                var scorer = canary ? batch.CanaryScorer! : batch.Scorer;
                if (!canary)
                {
                    // Drift monitoring counts the champion's rows against its baseline, on this (the read) thread; a
                    // canary's rows are not counted yet (docs/MONITORING.md).
                    _counter?.CountInputs(batch.IsNull, batch.Number, batch.Text);
                }

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

                batch.Count++;
            }

            return true;
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
                if (!canary)
                {
                    _counter?.CountOutputs(scored, scorerRow); // drift monitoring, on this (the write) thread
                }

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
                        // An array column of the output's element type, with the row's dimensions (PostgresArrays writes its binary form).
                        default: importer.Write(PostgresArrays.Write(scored.GetTensor(scorerRow, c)), NpgsqlDbType.Bytea); break;
                    }
                }

                importer.Write(canary ? _canary!.Version : _version, NpgsqlDbType.Integer);
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

                importer.Write(canary ? "canary" : "champion", NpgsqlDbType.Text);
            }

            return failed;
        }
    }
}

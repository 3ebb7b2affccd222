using ModelAsData.Core.Onnx;
using Npgsql;
using NpgsqlTypes;

namespace ModelAsData.Postgres.Jobs;

public sealed partial class RefreshTaskRunner
{
    /// <summary>
    /// A task's shadow rows between two copies into mad_shadow.&lt;table&gt;, column by column in their own types (bigint
    /// keys and number outputs unboxed), so the writer switches COPYs once per <see cref="FlushRows"/> rows rather than
    /// once per batch: each switch is two round trips, which on a loaded machine cost more than the rows. Filled and
    /// written on the write stage only.
    /// </summary>
    private sealed class ShadowBuffer
    {
        /// <summary>Rows kept before they are copied; the last ones of a task are copied after its served rows.</summary>
        public const int FlushRows = 16_384;

        private readonly KeyColumn[] _keys;
        private readonly IReadOnlyList<OutputColumn> _columns;
        private readonly object?[][] _keyValues;
        private readonly long[][] _longKeys;
        private readonly int[] _served;
        private readonly string?[] _errors;
        private readonly bool[] _scored;
        private readonly float[][] _reals;
        private readonly long[][] _integers;
        private readonly string?[][] _texts;
        private readonly decimal[][] _uint64s;
        private readonly byte[]?[][] _arrays;

        public ShadowBuffer(KeyColumn[] keys, IReadOnlyList<OutputColumn> columns, int batchCapacity)
        {
            var capacity = FlushRows + batchCapacity; // a batch is appended whole, then the buffer may be flushed
            _keys = keys;
            _columns = columns;
            _keyValues = keys.Select(_ => new object?[capacity]).ToArray();
            _longKeys = keys.Select(_ => new long[capacity]).ToArray();
            _served = new int[capacity];
            _errors = new string?[capacity];
            _scored = new bool[capacity];
            _reals = columns.Select(c => c.Type == ColumnType.Real ? new float[capacity] : []).ToArray();
            _integers = columns.Select(c => c.Type == ColumnType.Integer ? new long[capacity] : []).ToArray();
            _texts = columns.Select(c => c.Type == ColumnType.Text ? new string?[capacity] : []).ToArray();
            _uint64s = columns.Select(c => c.Type == ColumnType.Uint64 ? new decimal[capacity] : []).ToArray();
            _arrays = columns.Select(c => c.Type is ColumnType.Real or ColumnType.Integer or ColumnType.Text or ColumnType.Uint64 ? [] : new byte[]?[capacity]).ToArray();
        }

        public int Count { get; private set; }

        public bool IsFull => Count >= FlushRows;

        /// <summary>Keeps the batch's shadow rows: keys, the shadow's outputs (or the row's error), the version that served the key.</summary>
        public void Append(Batch batch, ScoredBatch scored, int champion, int? canary)
        {
            for (var row = 0; row < batch.Count; row++)
            {
                var shadowRow = batch.ShadowRow[row];
                if (shadowRow == -2)
                {
                    continue;
                }

                var error = batch.ShadowErrors[row];
                if (shadowRow >= 0 && scored.Error(shadowRow) is { } runError)
                {
                    (shadowRow, error) = (-1, runError);
                }

                var at = Count++;
                for (var k = 0; k < _keys.Length; k++)
                {
                    _keyValues[k][at] = batch.Keys[k][row];
                    _longKeys[k][at] = batch.LongKeys[k][row];
                }

                _served[at] = batch.Canary[row] ? canary!.Value : champion;
                _errors[at] = error;
                _scored[at] = shadowRow >= 0;
                if (shadowRow < 0)
                {
                    continue;
                }

                for (var c = 0; c < _columns.Count; c++)
                {
                    switch (_columns[c].Type)
                    {
                        case ColumnType.Real: _reals[c][at] = (float)scored.GetDouble(shadowRow, c); break;
                        case ColumnType.Integer: _integers[c][at] = scored.GetLong(shadowRow, c); break;
                        case ColumnType.Text: _texts[c][at] = (string)scored.GetValue(shadowRow, c); break;
                        case ColumnType.Uint64: _uint64s[c][at] = (ulong)scored.GetValue(shadowRow, c); break; // numeric(20,0), exact
                        default: _arrays[c][at] = PostgresArrays.Write(scored.GetTensor(shadowRow, c)); break;
                    }
                }
            }
        }

        /// <summary>Writes the kept rows as one COPY's rows (typed, synchronous) and empties the buffer.</summary>
        public void WriteTo(NpgsqlBinaryImporter importer, int shadowVersion, DateTime scoredAt, long job)
        {
            for (var at = 0; at < Count; at++)
            {
                importer.StartRow();
                for (var k = 0; k < _keys.Length; k++)
                {
                    _keys[k].Write(importer, _keyValues[k][at], _longKeys[k][at]);
                    _keyValues[k][at] = null; // nothing kept past the copy
                }

                importer.Write(shadowVersion, NpgsqlDbType.Integer);
                for (var c = 0; c < _columns.Count; c++)
                {
                    if (!_scored[at])
                    {
                        importer.WriteNull();
                        continue;
                    }

                    switch (_columns[c].Type)
                    {
                        case ColumnType.Real: importer.Write(_reals[c][at], NpgsqlDbType.Real); break;
                        case ColumnType.Integer: importer.Write(_integers[c][at], NpgsqlDbType.Bigint); break;
                        case ColumnType.Text: importer.Write(_texts[c][at]!, NpgsqlDbType.Text); _texts[c][at] = null; break;
                        case ColumnType.Uint64: importer.Write(_uint64s[c][at], NpgsqlDbType.Numeric); break;
                        default: importer.Write(_arrays[c][at]!, NpgsqlDbType.Bytea); _arrays[c][at] = null; break;
                    }
                }

                importer.Write(_served[at], NpgsqlDbType.Integer);
                importer.Write(scoredAt, NpgsqlDbType.TimestampTz);
                if (_errors[at] is { } error)
                {
                    importer.Write(error, NpgsqlDbType.Text);
                    _errors[at] = null;
                }
                else
                {
                    importer.WriteNull();
                }

                importer.Write(job, NpgsqlDbType.Bigint);
            }

            Count = 0;
        }
    }
}

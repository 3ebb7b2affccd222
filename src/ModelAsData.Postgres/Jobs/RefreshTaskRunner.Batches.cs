using ModelAsData.Core;
using ModelAsData.Core.Onnx;
using Npgsql;
using NpgsqlTypes;

namespace ModelAsData.Postgres.Jobs;

/// <summary>What the pipeline hands round: batches of rows, and how each key and feature column is read and written.</summary>
public sealed partial class RefreshTaskRunner
{
    /// <summary>One batch in flight: its rows' keys and features as read, its scorer, and each row's scorer row or error.</summary>
    private sealed class Batch
    {
        public Batch(ModelScorer scorer, ModelScorer? canaryScorer, ModelScorer? shadowScorer, int keyCount, int featureCount)
        {
            Scorer = scorer;
            CanaryScorer = canaryScorer;
            ShadowScorer = shadowScorer;
            Capacity = scorer.Capacity * 2; // rows with an error take no place in the scorer
            Keys = Enumerable.Range(0, keyCount).Select(_ => new object?[Capacity]).ToArray();
            LongKeys = Enumerable.Range(0, keyCount).Select(_ => new long[Capacity]).ToArray();
            ScorerRow = new int[Capacity];
            Canary = new bool[Capacity];
            ShadowRow = new int[Capacity];
            AgreementRow = new int[Capacity];
            ShadowErrors = new string?[Capacity];
            Errors = new string?[Capacity];
            Number = new double[featureCount];
            Text = new string?[featureCount];
            IsNull = new bool[featureCount];
            Tensor = new object?[featureCount];
        }

        public ModelScorer Scorer { get; }

        /// <summary>The canary's scorer when the job runs under a canary (017): rows whose key is in it go here.</summary>
        public ModelScorer? CanaryScorer { get; }

        /// <summary>The shadow's scorer when the job has a shadow (020): rows whose key it samples go here too.</summary>
        public ModelScorer? ShadowScorer { get; }

        public int Capacity { get; }

        public int Count { get; set; }

        /// <summary>Rows the shadow samples in this batch (with an error or not): they go to mad_shadow.&lt;table&gt; with it.</summary>
        public int ShadowCount { get; set; }

        /// <summary>Whether the shadow's rows of this batch are scored (or had nothing to score) and may be written.</summary>
        public bool ShadowReady { get; set; }

        public bool IsFull => Count == Capacity || Scorer.IsFull || CanaryScorer is { IsFull: true } || ShadowScorer is { IsFull: true };

        public object?[][] Keys { get; }

        /// <summary>Keys of bigint columns, unboxed (the common case).</summary>
        public long[][] LongKeys { get; }

        public int[] ScorerRow { get; }

        /// <summary>Whether the row is the canary's (its ScorerRow then indexes the canary's scorer).</summary>
        public bool[] Canary { get; }

        public string?[] Errors { get; }

        /// <summary>The row's place in the shadow's scorer; -1 with an error, -2 when the shadow does not sample it.</summary>
        public int[] ShadowRow { get; }

        public string?[] ShadowErrors { get; }

        /// <summary>A canary row's place in the champion's scorer when its key is in the agreement sample (043_2); -1 otherwise.</summary>
        public int[] AgreementRow { get; }

        public ScoredBatch ShadowScored { get; set; }

        public ScoredBatch Scored { get; set; }

        public ScoredBatch CanaryScored { get; set; }

        // The current row's feature values, by feature column.
        public double[] Number { get; }

        public string?[] Text { get; }

        public bool[] IsNull { get; }

        /// <summary>The current row's tensor columns: a <see cref="RowTensor"/>, bytes, or why the array cannot be a tensor.</summary>
        public object?[] Tensor { get; }

        public void Clear()
        {
            Count = 0;
            ShadowCount = 0;
            ShadowReady = false;
            Scorer.Clear();
            CanaryScorer?.Clear();
            ShadowScorer?.Clear();
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

        public NpgsqlDbType Type => type;

        public void Write(NpgsqlBinaryImporter importer, Batch batch, int key, int row) => Write(importer, batch.Keys[key][row], batch.LongKeys[key][row]);

        /// <summary>Writes a key as read: <paramref name="value"/>, or <see cref="Unboxed"/> with the bigint in <paramref name="longValue"/>.</summary>
        public void Write(NpgsqlBinaryImporter importer, object? value, long longValue)
        {
            switch (value)
            {
                case null: importer.WriteNull(); break;
                case Unboxed: importer.Write(longValue, type); break;
                case int i: importer.Write(i, type); break;
                case string s: importer.Write(s, type); break;
                case { } other: importer.Write(other, type); break;
            }
        }

        private static readonly Unboxed s_unboxed = new();

        /// <summary>Marks a key whose value is in <see cref="Batch.LongKeys"/>.</summary>
        public sealed class Unboxed;
    }

    /// <summary>A feature column in the type <c>mad.task_plan</c> reads it in: a number, a boolean, text, or a whole tensor (an array or bytea).</summary>
    private sealed class FeatureColumn(string name, string type)
    {
        private readonly bool _tensor = PostgresArrays.IsTensor(type);

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
            if (_tensor)
            {
                // An array is read in its binary form and decoded here (PostgresArrays): any rank, NULL elements reported.
                var bytes = exporter.Read<byte[]>(NpgsqlDbType.Bytea);
                batch.Tensor[index] = type == "bytea" ? bytes : (object?)PostgresArrays.Read(bytes, out var error) ?? error;
                return;
            }

            switch (type)
            {
                case "real": batch.Number[index] = exporter.Read<float>(NpgsqlDbType.Real); break;
                case "double precision": batch.Number[index] = exporter.Read<double>(NpgsqlDbType.Double); break;
                case "smallint": batch.Number[index] = exporter.Read<short>(NpgsqlDbType.Smallint); break;
                case "integer": batch.Number[index] = exporter.Read<int>(NpgsqlDbType.Integer); break;
                case "bigint":
                    var whole = exporter.Read<long>(NpgsqlDbType.Bigint);
                    if (FeatureSlots.IsExactDouble(whole)) batch.Number[index] = whole;
                    else batch.Text[index] = FeatureSlots.Digits(whole);
                    break;
                case "boolean": batch.Number[index] = exporter.Read<bool>(NpgsqlDbType.Boolean) ? 1 : 0; break;
                default: batch.Text[index] = exporter.Read<string>(NpgsqlDbType.Text); break;
            }
        }
    }

    /// <summary>The canary a job fixed when it started: its model and version, and which keys it serves.</summary>
    private sealed record JobCanary(OnnxModel Model, int Version, long Seed, double Percent)
    {
        /// <summary>Drift monitoring: the canary's rows, counted against the canary version's own baseline (or first window).</summary>
        public Core.Monitoring.ProfileCounter? Counter { get; init; }

        public bool Serves(string keyText) => Core.Deployments.StickyBucket.InCanary(Seed, keyText, Percent);

        /// <summary>The percent of the canary's keys also scored by the champion (the job's agreement_percent, 043_2).</summary>
        public double AgreementPercent { get; init; }

        /// <summary>The task's champion-vs-canary sums; null when the job samples no key.</summary>
        public Core.Deployments.CanaryAgreementSums? Agreement { get; init; }

        public bool Compares(string keyText) => Agreement is not null && Core.Deployments.CanaryAgreement.Samples(Seed, keyText, AgreementPercent);
    }

    /// <summary>The shadow a job fixed when it started (020): its model and version, and which keys it samples.</summary>
    private sealed record JobShadow(OnnxModel Model, int Version, long Seed, double Percent)
    {
        public bool Samples(string keyText) => Core.Deployments.StickyBucket.InCanary(Seed, keyText, Percent);

        /// <summary>Whether the sample depends on the key (not at 100 %): only then is the key hashed for it.</summary>
        public bool NeedsHash => Core.Deployments.StickyBucket.NeedsHash(Percent);
    }

    /// <summary>
    /// What a task's shadow did: the rows it wrote to mad_shadow.&lt;table&gt; (batch by batch, in the task's transaction,
    /// between the served rows' COPYs), or why it could not score or write (the task is then run again without it:
    /// its rows are dropped, the served ones written as ever).
    /// </summary>
    private sealed class ShadowRows
    {
        public long Written { get; set; }

        public string? Error { get; init; }
    }

    /// <summary>The shadow failed to score or to be written in a task: the task's transaction is rolled back and the task run again without it.</summary>
    private sealed class ShadowFailedException(string message, Exception inner) : Exception(message, inner);
}

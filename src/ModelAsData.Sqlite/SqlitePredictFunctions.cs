using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.Data.Sqlite;
using ModelAsData.Core;
using ModelAsData.Core.Deployments;
using ModelAsData.Core.Onnx;
using ModelAsData.Core.Scoring;

namespace ModelAsData.Sqlite;

/// <summary>
/// The SQL functions of the embedded mode, registered on a connection with one call:
/// <c>predict(ref, feature, ...)</c> returns the label or value, <c>predict_proba(ref, class, feature, ...)</c> one
/// class's probability, <c>predict_version(ref)</c> the version a reference resolves to. Features are given in the
/// model's input order; a single JSON array may stand for all of them. A model with an input that takes a whole
/// tensor per row (an image, token ids of any length) takes one argument per input instead: a tensor as JSON text
/// (nested arrays) or a BLOB (bytes, e.g. a uint8 image), a value of one for an input of one.
/// <c>bucket(seed, key_text)</c> and <c>key_text(value, ...)</c> are the deployments' sticky hash and canonical key
/// text, as in PostgreSQL; <c>predict_keyed(ref, key, feature, ...)</c> predicts with the version the reference's
/// deployment serves the key. Rows scored by <c>predict</c> and <c>predict_keyed</c> are counted for drift monitoring
/// (<see cref="SqlitePredictCounts"/>: in memory, written when the connection closes or at
/// <see cref="FlushDriftCounts"/>); <c>predict_proba</c> is not, as it scores a row a query usually also predicts.
/// </summary>
public static class SqlitePredictFunctions
{
    /// <summary>Registers the functions on an open connection whose file holds a migrated registry.</summary>
    public static void Register(SqliteConnection connection, ModelCache? cache = null)
    {
        using (var check = connection.CreateCommand())
        {
            check.CommandText = "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'mad_model_versions'";
            if ((long)check.ExecuteScalar()! == 0)
            {
                throw new ModelAsDataException(ErrorCode.NotFound,
                    $"{connection.DataSource} has no ModelAsData registry: create it with `mad db migrate --db {connection.DataSource}` or SqliteModelRegistry.OpenAsync, then push a model.");
            }
        }

        var resolver = new SqliteModelResolver(connection, cache ?? ModelCache.Shared);
        var counts = SqlitePredictCounts.Attach(connection);
        connection.Disposed += (_, _) => resolver.Dispose();
        connection.CreateFunction("predict", (object?[] args) => Predict(connection, resolver, counts, args));
        connection.CreateFunction("predict_proba", (object?[] args) => PredictProbability(resolver, args));
        connection.CreateFunction("predict_keyed", (object?[] args) => PredictKeyed(connection, resolver, counts, args));
        connection.CreateFunction("predict_version", (string reference) => (long)resolver.Get(reference).Version.Version);
        // The published sticky hash of deployments (docs/DEPLOYMENTS.md), the same values as PostgreSQL's mad.bucket.
        connection.CreateFunction("bucket", (long seed, string keyText) => StickyBucket.Of(seed, keyText), isDeterministic: true);
        connection.CreateFunction("key_text", (object?[] values) => StickyBucket.KeyText(values), isDeterministic: true);
    }

    /// <summary>
    /// Writes the drift counts of the rows predict() scored on this connection so far, in <paramref name="transaction"/>
    /// (else the connection's open transaction, else one of its own). Call between statements, never from inside one.
    /// They are written anyway when the connection closes; a first window still learning (fewer than 100 rows) waits.
    /// </summary>
    public static void FlushDriftCounts(SqliteConnection connection, SqliteTransaction? transaction = null) =>
        SqlitePredictCounts.Of(connection)?.Flush(connection, transaction ?? SqliteDatabase.OpenTransaction(connection));

    private static object Predict(SqliteConnection connection, SqliteModelResolver resolver, SqlitePredictCounts counts, object?[] args)
    {
        if (args.Length < 1 || args[0] is not string reference)
        {
            throw new ArgumentException("predict(model, feature, ...) takes a model reference such as 'iris' or 'iris@2', then the features in the model's input order.");
        }

        var resolved = resolver.Get(reference);
        var scored = Score(resolved, reference, args, 1, out var slots);
        counts.Count(connection, resolved, slots, scored);
        return AsSqlite(scored.GetPrediction(0));
    }

    /// <summary>predict_keyed(ref, key, feature, ...): the prediction of the version the reference's deployment serves this key.</summary>
    private static object PredictKeyed(SqliteConnection connection, SqliteModelResolver resolver, SqlitePredictCounts counts, object?[] args)
    {
        if (args.Length < 2 || args[0] is not string reference || args[1] is null or DBNull)
        {
            throw new ArgumentException("predict_keyed(model, key, feature, ...) takes a model reference, the row's key (a value, or key_text(a, b) for a composite key), then the features.");
        }

        var resolved = resolver.GetFor(reference, StickyBucket.KeyText(args[1]));
        var scored = Score(resolved, reference, args, 2, out var slots);
        counts.Count(connection, resolved, slots, scored);
        return AsSqlite(scored.GetPrediction(0));
    }

    /// <summary>A uint64 prediction as the TEXT of its digits, as prediction tables store it (SQLite's INTEGER is signed 64-bit).</summary>
    private static object AsSqlite(object prediction) => prediction is ulong whole ? whole.ToString(CultureInfo.InvariantCulture) : prediction;

    private static object PredictProbability(SqliteModelResolver resolver, object?[] args)
    {
        if (args.Length < 2 || args[0] is not string reference || args[1] is null or DBNull)
        {
            throw new ArgumentException("predict_proba(model, class, feature, ...) takes a model reference, a class label such as 'virginica' or 1, then the features.");
        }

        var resolved = resolver.Get(reference);
        var className = Convert.ToString(args[1], CultureInfo.InvariantCulture)!;
        var column = resolved.Model.Signature.FindProbabilityColumn(className, reference);
        return Score(resolved, reference, args, 2, out _).GetDouble(0, column);
    }

    /// <summary>Scores one row; <paramref name="slots"/> are its feature values per scorer slot (null: it was given tensors).</summary>
    private static ScoredBatch Score(SqliteModelResolver.ResolvedModel resolved, string reference, object?[] args, int first, out object?[]? slots)
    {
        slots = null;
        var scorer = resolved.Scorer;
        var given = args.Length - first;
        scorer.Clear();
        scorer.BeginRow();
        var inputs = resolved.Model.Signature.Inputs;
        var ragged = inputs.Any(i => i.IsRagged);
        if (given == 1 && scorer.SlotCount > 1 && !ragged && args[first] is string json && json.StartsWith('[') && !json[1..].TrimStart().StartsWith('['))
        {
            slots = SetFromJsonArray(scorer, reference, json);
        }
        else if ((given != scorer.SlotCount || ragged) && given == inputs.Count)
        {
            SetByInput(scorer, reference, args, first);
        }
        else
        {
            if (given != scorer.SlotCount)
            {
                scorer.CancelRow();
                var perInput = ragged ? $", or one per input ({inputs.Count}: a tensor as JSON text or a BLOB)" : "";
                throw new ModelAsDataException(ErrorCode.FeatureMismatch,
                    $"Model '{reference}' takes {scorer.SlotCount} feature(s){perInput} ({resolved.Model.Signature.DescribeInputs()}); predict() was given {given}.");
            }

            for (var slot = 0; slot < given; slot++)
            {
                var value = args[first + slot];
                if (scorer.Set(slot, value is DBNull ? null : value) is { } error)
                {
                    scorer.CancelRow();
                    throw new ModelAsDataException(ErrorCode.FeatureMismatch, $"Model '{reference}', feature {slot + 1}: {error}.");
                }
            }

            slots = args[first..];
        }

        scorer.EndRow();
        return scorer.Score();
    }

    /// <summary>One argument per input: a tensor as JSON text or a BLOB for an input of more than one value, else a scalar.</summary>
    private static void SetByInput(ModelScorer scorer, string reference, object?[] args, int first)
    {
        var inputs = scorer.Model.Signature.Inputs;
        for (int i = 0, slot = 0; i < inputs.Count; slot += inputs[i].Width, i++)
        {
            var value = args[first + i];
            var error = value switch
            {
                byte[] bytes => scorer.SetTensor(i, bytes),
                string text when text.StartsWith('[') => JsonFeatures.SetTensor(scorer, i, text),
                _ when inputs[i].Width == 1 && !inputs[i].IsRagged => scorer.Set(slot, value is DBNull ? null : value),
                null or DBNull => $"null cannot feed input '{inputs[i].Name}'",
                _ => $"input '{inputs[i].Name}' takes {ModelScorer.DescribeRow(inputs[i])} per row, as a JSON array or a BLOB",
            };
            if (error is not null)
            {
                scorer.CancelRow();
                throw new ModelAsDataException(ErrorCode.FeatureMismatch, $"Model '{reference}', argument {i + 1}: {error}.");
            }
        }
    }

    private static object?[] SetFromJsonArray(ModelScorer scorer, string reference, string json)
    {
        if (scorer.Model.Signature.Inputs.Any(i => i.Type is FeatureType.Int64 or FeatureType.Uint64))
        {
            return SetFromJsonNumbers(scorer, reference, json);
        }

        double[]? values;
        try
        {
            values = JsonSerializer.Deserialize<double[]>(json);
        }
        catch (JsonException e)
        {
            scorer.CancelRow();
            throw new ModelAsDataException(ErrorCode.FeatureMismatch, $"Model '{reference}': the feature array is not a JSON array of numbers ({e.Message}).", e);
        }

        if (values is null || values.Length != scorer.SlotCount)
        {
            scorer.CancelRow();
            throw new ModelAsDataException(ErrorCode.FeatureMismatch, $"Model '{reference}' takes {scorer.SlotCount} features; the JSON array holds {values?.Length ?? 0}.");
        }

        for (var slot = 0; slot < values.Length; slot++)
        {
            if (scorer.Set(slot, values[slot]) is { } error)
            {
                scorer.CancelRow();
                throw new ModelAsDataException(ErrorCode.FeatureMismatch, $"Model '{reference}', feature {slot + 1}: {error}.");
            }
        }

        return values.Select(v => (object?)v).ToArray();
    }

    /// <summary>
    /// As <see cref="SetFromJsonArray"/>, each number as its exact CLR value (long, ulong, else double): a 64-bit
    /// integer input past 2^53 keeps every digit. Only for models with such an input; the others keep the double[] read.
    /// </summary>
    private static object?[] SetFromJsonNumbers(ModelScorer scorer, string reference, string json)
    {
        JsonArray? array;
        try
        {
            array = JsonNode.Parse(json) as JsonArray;
        }
        catch (JsonException e)
        {
            scorer.CancelRow();
            throw new ModelAsDataException(ErrorCode.FeatureMismatch, $"Model '{reference}': the feature array is not a JSON array of numbers ({e.Message}).", e);
        }

        if (array is null || array.Count != scorer.SlotCount)
        {
            scorer.CancelRow();
            throw new ModelAsDataException(ErrorCode.FeatureMismatch, $"Model '{reference}' takes {scorer.SlotCount} features; the JSON array holds {array?.Count ?? 0}.");
        }

        var values = array.Select(JsonFeatures.ToClr).ToArray();
        for (var slot = 0; slot < values.Length; slot++)
        {
            if (scorer.Set(slot, values[slot]) is { } error)
            {
                scorer.CancelRow();
                throw new ModelAsDataException(ErrorCode.FeatureMismatch, $"Model '{reference}', feature {slot + 1}: {error}.");
            }
        }

        return values;
    }
}

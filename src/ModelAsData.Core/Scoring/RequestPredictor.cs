using System.Text.Json.Nodes;
using ModelAsData.Core.Onnx;
using ModelAsData.Core.Registry;

namespace ModelAsData.Core.Scoring;

/// <summary>
/// Scores one row of features given as JSON with the version a reference resolves to, loading it through the cache.
/// The answer holds the decoded outputs and the version that made them. Not thread-safe.
/// </summary>
public sealed class RequestPredictor(IModelRegistry registry, ModelCache cache)
{
    public async Task<JsonObject> PredictAsync(ModelReference reference, JsonObject features, CancellationToken cancellationToken = default)
    {
        var version = await registry.ResolveAsync(reference, cancellationToken);
        if (version.Status != VersionStatus.Ready)
        {
            throw new ModelAsDataException(ErrorCode.NotReady,
                $"{version} is {version.Status.ToString().ToLowerInvariant()}{(version.Reason is null ? "" : $" ({version.Reason})")}: only ready versions can score.");
        }

        var bytes = cache.Contains(version.Sha256) ? [] : await registry.LoadBytesAsync(version.Model, version.Version, cancellationToken);
        var model = cache.GetOrLoad(version.Sha256, () => bytes);
        using var scorer = model.CreateScorer(1);
        JsonFeatures.AddRow(scorer, features, reference.ToString());
        var scored = scorer.Score(cancellationToken);
        return ToJson(scored, version);
    }

    /// <summary>One scored row as JSON: <c>{"model": "iris", "version": 2, "label": 1, "probability_0": 0.01, ...}</c>.</summary>
    public static JsonObject ToJson(ScoredBatch scored, ModelVersion version, int row = 0) => ToJson(scored, version.Model, version.Version, row);

    /// <inheritdoc cref="ToJson(ScoredBatch, ModelVersion, int)"/>
    public static JsonObject ToJson(ScoredBatch scored, string model, int version, int row = 0)
    {
        var json = new JsonObject { ["model"] = model, ["version"] = version };
        for (var c = 0; c < scored.Columns.Count; c++)
        {
            json[scored.Columns[c].Name] = scored.GetValue(row, c) switch
            {
                double[] array => new JsonArray(array.Select(d => (JsonNode?)JsonValue.Create(d)).ToArray()),
                RowTensor tensor => ToJson(tensor),
                double d when !double.IsFinite(d) => null,
                ulong u => JsonValue.Create(u),
                var value => JsonValue.Create(value),
            };
        }

        return json;
    }

    /// <summary>A row's tensor as nested JSON arrays by its dimensions (a number that is not finite as null).</summary>
    public static JsonNode? ToJson(RowTensor tensor)
    {
        var at = 0;
        return Nest(tensor, 0, ref at);
    }

    private static JsonNode? Nest(RowTensor tensor, int dim, ref int at)
    {
        if (dim == tensor.Dims.Length)
        {
            return tensor.Values.GetValue(at++) switch
            {
                float f when !float.IsFinite(f) => null,
                double d when !double.IsFinite(d) => null,
                float f => JsonValue.Create(f),
                double d => JsonValue.Create(d),
                long l => JsonValue.Create(l),
                ulong u => JsonValue.Create(u), // an exact JSON number, above 2^53 too
                bool b => JsonValue.Create(b),
                var other => JsonValue.Create(other?.ToString()),
            };
        }

        var array = new JsonArray();
        for (var i = 0; i < tensor.Dims[dim]; i++)
        {
            array.Add(Nest(tensor, dim + 1, ref at));
        }

        return array;
    }
}

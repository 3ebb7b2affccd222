using System.Collections.Concurrent;
using System.Text.Json.Nodes;
using ModelAsData.Core.Onnx;
using ModelAsData.Core.Scoring;

namespace ModelAsData.Sidecar.Requests;

/// <summary>
/// One loaded version with a pool of one-row scorers. Thread-safe: each call rents a scorer. Does not own the
/// <see cref="OnnxModel"/> (the cache does); owns its scorers.
/// </summary>
public sealed class RequestVersion : IDisposable
{
    private readonly ConcurrentBag<ModelScorer> _scorers = [];

    internal RequestVersion(string model, int version, OnnxModel onnx)
    {
        Model = model;
        Version = version;
        Onnx = onnx;
    }

    public string Model { get; }

    public int Version { get; }

    public OnnxModel Onnx { get; }

    /// <summary>Scores one row of features given as JSON; the answer holds the decoded outputs, the model and the version.</summary>
    public JsonObject Predict(JsonObject features, string reference, CancellationToken cancellationToken = default)
    {
        var scorer = Rent(1);
        try
        {
            scorer.Clear();
            JsonFeatures.AddRow(scorer, features, reference);
            var scored = scorer.Score(cancellationToken);
            return RequestPredictor.ToJson(scored, Model, Version);
        }
        finally
        {
            Return(scorer);
        }
    }

    /// <summary>A scorer of at least one row's capacity; give it back with <see cref="Return"/>.</summary>
    public ModelScorer Rent(int capacity)
    {
        if (capacity == 1 && _scorers.TryTake(out var scorer))
        {
            return scorer;
        }

        return Onnx.CreateScorer(capacity);
    }

    public void Return(ModelScorer scorer)
    {
        if (scorer.Capacity == 1 && _scorers.Count < 64)
        {
            scorer.Clear();
            _scorers.Add(scorer);
        }
        else
        {
            scorer.Dispose();
        }
    }

    public void Dispose()
    {
        while (_scorers.TryTake(out var scorer))
        {
            scorer.Dispose();
        }
    }
}

using System.Collections.Concurrent;

namespace ModelAsData.Core.Onnx;

/// <summary>
/// Loaded models keyed by the sha256 of their bytes, so a version loads once per process however many references,
/// aliases or connections use it. Thread-safe; owns the models and disposes them with itself.
/// </summary>
public sealed class ModelCache : IDisposable
{
    private readonly ConcurrentDictionary<string, Lazy<OnnxModel>> _models = new(StringComparer.Ordinal);
    private readonly ScoringOptions _options;

    public ModelCache(ScoringOptions? options = null)
    {
        _options = options ?? ScoringOptions.Default;
    }

    /// <summary>The process-wide cache that embedded SQLite connections share.</summary>
    public static ModelCache Shared { get; } = new();

    /// <summary>The options models are loaded with (the size limit, threads).</summary>
    public ScoringOptions Options => _options;

    /// <summary>The loaded model with this sha256, loading it from <paramref name="loadBytes"/> the first time.</summary>
    public OnnxModel GetOrLoad(string sha256, Func<byte[]> loadBytes) => GetOrCreate(sha256, () => OnnxModel.Load(loadBytes(), _options));

    /// <summary>
    /// The loaded model with this sha256, made by <paramref name="load"/> the first time (e.g. <see cref="OnnxModel.LoadFile"/>
    /// with <see cref="Options"/>, for a large version read into a temporary file).
    /// </summary>
    public OnnxModel GetOrCreate(string sha256, Func<OnnxModel> load)
    {
        var lazy = _models.GetOrAdd(sha256, _ => new Lazy<OnnxModel>(load));
        try
        {
            return lazy.Value;
        }
        catch
        {
            _models.TryRemove(new KeyValuePair<string, Lazy<OnnxModel>>(sha256, lazy));
            throw;
        }
    }

    public bool Contains(string sha256) => _models.TryGetValue(sha256, out var lazy) && lazy.IsValueCreated;

    public void Dispose()
    {
        foreach (var lazy in _models.Values)
        {
            if (lazy.IsValueCreated)
            {
                lazy.Value.Dispose();
            }
        }

        _models.Clear();
    }
}

using Prometheus;

namespace ModelAsData.Sidecar.Requests;

/// <summary>
/// The versions online scoring keeps loaded, at most <see cref="Capacity"/> of them: a version asked for when the
/// set is full pushes out the least recently used one. Every caller holds a <see cref="VersionLease"/> while it
/// scores, and an evicted version is disposed (its scorers and its ONNX Runtime session) only when its last lease
/// ends, so eviction never pulls a session from under a request. A later request for it loads it again.
/// Thread-safe: one lock guards the order and the lease counts (O(1) each); loading and disposing happen outside it.
/// Owns the versions it holds.
/// </summary>
public sealed class LoadedVersions : IDisposable
{
    private readonly object _gate = new();
    private readonly Dictionary<(string Model, int Version), LinkedListNode<Entry>> _entries = [];
    private readonly LinkedList<Entry> _order = []; // most recently used first
    private readonly Counter _evictions;
    private readonly Gauge _loaded;
    private bool _disposed;

    public LoadedVersions(int capacity, RequestMetrics metrics)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(capacity, 1);
        Capacity = capacity;
        var factory = Metrics.WithCustomRegistry(metrics.Registry);
        _evictions = factory.CreateCounter("mad_model_evictions_total", "Loaded versions pushed out of the online scoring set (least recently used), by model.",
            new CounterConfiguration { LabelNames = ["model"] });
        _loaded = factory.CreateGauge("mad_models_loaded", "Versions in the online scoring set (loaded or loading); evicted ones still in use are not counted.");
    }

    /// <summary>How many versions stay loaded (<c>mad serve --max-loaded-versions</c>).</summary>
    public int Capacity { get; }

    /// <summary>
    /// The version, loaded by <paramref name="load"/> the first time (concurrent callers share one load), leased
    /// until the lease is disposed. A load that fails is forgotten, so the next call tries again.
    /// </summary>
    public async ValueTask<VersionLease> AcquireAsync(string model, int version, Func<Task<RequestVersion>> load, CancellationToken cancellationToken)
    {
        Entry entry;
        List<Entry>? evicted = null;
        lock (_gate)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            if (_entries.TryGetValue((model, version), out var node))
            {
                _order.Remove(node);
                _order.AddFirst(node);
            }
            else
            {
                node = _order.AddFirst(new Entry(model, version, new Lazy<Task<RequestVersion>>(load)));
                _entries[(model, version)] = node;
                while (_order.Count > Capacity)
                {
                    var last = _order.Last!;
                    _order.RemoveLast();
                    _entries.Remove((last.Value.Model, last.Value.Version));
                    last.Value.Evicted = true;
                    _evictions.WithLabels(last.Value.Model).Inc();
                    if (last.Value.Uses == 0)
                    {
                        (evicted ??= []).Add(last.Value);
                    }
                }

                _loaded.Set(_order.Count);
            }

            entry = node.Value;
            entry.Uses++;
        }

        evicted?.ForEach(e => e.Dispose());
        try
        {
            return new VersionLease(this, entry, await entry.Load.Value.WaitAsync(cancellationToken));
        }
        catch
        {
            lock (_gate)
            {
                if (entry.Load.Value.IsFaulted && _entries.TryGetValue((model, version), out var node) && node.Value == entry)
                {
                    _entries.Remove((model, version));
                    _order.Remove(node);
                    _loaded.Set(_order.Count);
                }
            }

            Release(entry);
            throw;
        }
    }

    /// <summary>Whether the version is in the set now (loaded or loading).</summary>
    public bool Contains(string model, int version)
    {
        lock (_gate)
        {
            return _entries.ContainsKey((model, version));
        }
    }

    public void Dispose()
    {
        List<Entry> idle;
        lock (_gate)
        {
            _disposed = true;
            foreach (var entry in _order)
            {
                entry.Evicted = true;
            }

            idle = _order.Where(e => e.Uses == 0).ToList();
            _order.Clear();
            _entries.Clear();
        }

        idle.ForEach(e => e.Dispose());
    }

    internal void Release(Entry entry)
    {
        bool dispose;
        lock (_gate)
        {
            entry.Uses--;
            dispose = entry.Uses == 0 && entry.Evicted;
        }

        if (dispose)
        {
            entry.Dispose();
        }
    }

    internal sealed class Entry(string model, int version, Lazy<Task<RequestVersion>> load)
    {
        public string Model { get; } = model;

        public int Version { get; } = version;

        public Lazy<Task<RequestVersion>> Load { get; } = load;

        /// <summary>Leases held now; guarded by the set's lock.</summary>
        public int Uses { get; set; }

        /// <summary>Out of the set: disposed when <see cref="Uses"/> reaches 0. Guarded by the set's lock.</summary>
        public bool Evicted { get; set; }

        /// <summary>Called once, with no lease held; a version still loading is disposed when its load ends.</summary>
        public void Dispose()
        {
            if (Load.IsValueCreated)
            {
                _ = Load.Value.ContinueWith(t =>
                {
                    if (t.IsCompletedSuccessfully)
                    {
                        t.Result.Dispose();
                        t.Result.Onnx.Dispose();
                    }
                }, CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
            }
        }
    }
}

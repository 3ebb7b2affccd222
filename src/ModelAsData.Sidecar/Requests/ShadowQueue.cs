using System.Threading.Channels;
using Prometheus;

namespace ModelAsData.Sidecar.Requests;

/// <summary>
/// The online shadow's queue (025, docs/DEPLOYMENTS.md): the doors add a sampled prediction after its answer was sent,
/// <see cref="ShadowWorker"/> scores it with the shadow version. <see cref="Add"/> never blocks: when the queue is full
/// the work is dropped and counted (<c>mad_shadow_dropped_total</c>), so a slow or broken shadow never holds an answer
/// back. Thread-safe.
/// </summary>
public sealed class ShadowQueue
{
    /// <summary>The most sampled predictions waiting for the shadow.</summary>
    public const int DefaultCapacity = 10_000;

    private readonly Channel<ShadowWork> _channel;

    public ShadowQueue(RequestMetrics metrics)
        : this(metrics, DefaultCapacity)
    {
    }

    internal ShadowQueue(RequestMetrics metrics, int capacity)
    {
        _channel = Channel.CreateBounded<ShadowWork>(new BoundedChannelOptions(capacity) { FullMode = BoundedChannelFullMode.DropWrite, SingleReader = true });
        var factory = Metrics.WithCustomRegistry(metrics.Registry);
        Dropped = factory.CreateCounter("mad_shadow_dropped_total", "Online predictions a shadow sampled but did not score: its queue was full.");
        Scored = factory.CreateCounter("mad_shadow_scored_total", "Online predictions scored by a shadow (logged with arm shadow).");
        Failed = factory.CreateCounter("mad_shadow_failed_total", "Online predictions a shadow failed to score (logged with arm shadow and the error).");
    }

    public Counter Dropped { get; }

    public Counter Scored { get; }

    public Counter Failed { get; }

    internal ChannelReader<ShadowWork> Reader => _channel.Reader;

    /// <summary>Queues the work, or drops and counts it when the queue is full.</summary>
    internal void Add(ShadowWork work)
    {
        if (!_channel.Writer.TryWrite(work))
        {
            Dropped.Inc();
        }
    }
}

using System.Security.Cryptography;
using System.Text;
using System.Threading.Channels;

namespace ModelAsData.Sidecar.Requests;

/// <summary>
/// The hot path's side of the prediction log: <see cref="Add"/> never blocks and never touches the database; the
/// <see cref="PredictionLogWriter"/> drains the entries into <c>mad.prediction_log</c> in batches. When the writer
/// falls far behind, entries are dropped and counted (<c>mad_prediction_log_dropped_total</c>) rather than slowing
/// predictions. Thread-safe.
/// </summary>
public sealed class PredictionLog
{
    private readonly Channel<PredictionLogEntry> _channel = Channel.CreateBounded<PredictionLogEntry>(
        new BoundedChannelOptions(100_000) { FullMode = BoundedChannelFullMode.DropWrite, SingleReader = true });

    private readonly RequestMetrics _metrics;

    public PredictionLog(RequestMetrics metrics)
    {
        _metrics = metrics;
    }

    internal ChannelReader<PredictionLogEntry> Reader => _channel.Reader;

    public void Add(PredictionLogEntry entry)
    {
        if (!_channel.Writer.TryWrite(entry))
        {
            _metrics.LogDropped.Inc();
        }
    }

    /// <summary>sha256 (lower-case hex) of the UTF-8 text, as <c>mad.inputs_hash</c> computes it from jsonb text.</summary>
    public static string Hash(string text) => Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(text)));
}

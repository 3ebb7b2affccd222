using System.Diagnostics;

namespace ModelAsData.Sidecar.Streaming;

/// <summary>Keys drained per second, over windows of a quarter second.</summary>
internal sealed class DrainRate
{
    private static readonly TimeSpan Window = TimeSpan.FromMilliseconds(250);
    private long _windowStart = Stopwatch.GetTimestamp();
    private long _keys;

    public double PerSecond { get; private set; }

    public void Add(int keys)
    {
        _keys += keys;
        var elapsed = Stopwatch.GetElapsedTime(_windowStart);
        if (elapsed >= Window)
        {
            PerSecond = _keys / elapsed.TotalSeconds;
            _keys = 0;
            _windowStart = Stopwatch.GetTimestamp();
        }
    }
}

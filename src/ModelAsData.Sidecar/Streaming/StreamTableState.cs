using System.Diagnostics;

namespace ModelAsData.Sidecar.Streaming;

/// <summary>What this sidecar knows of one table: rows streamed, and its failing batch's error and pause.</summary>
internal sealed class StreamTableState
{
    private long _retryAt;

    public long Rows { get; set; }

    public long ReportedRows { get; set; }

    public double ReportedRate { get; set; }

    public string? ReportedError { get; set; }

    public int Failures { get; private set; }

    public string? Error { get; private set; }

    public bool MayRetry => Error is null || Stopwatch.GetTimestamp() >= _retryAt;

    public void Failed(string error, TimeSpan pause)
    {
        Failures++;
        Error = error;
        _retryAt = Stopwatch.GetTimestamp() + (long)(pause.TotalSeconds * Stopwatch.Frequency);
    }

    public void Succeeded()
    {
        Failures = 0;
        Error = null;
    }
}

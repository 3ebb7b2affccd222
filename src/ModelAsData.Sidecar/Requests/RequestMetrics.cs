using Prometheus;

namespace ModelAsData.Sidecar.Requests;

/// <summary>
/// The sidecar's Prometheus metrics (prometheus-net), in a registry of its own so that several sidecars in one
/// process (tests) do not mix. Served at <c>/metrics</c> by the HTTP endpoint. Thread-safe.
/// </summary>
public sealed class RequestMetrics
{
    public RequestMetrics()
    {
        Registry = Metrics.NewCustomRegistry();
        var factory = Metrics.WithCustomRegistry(Registry);
        Requests = factory.CreateCounter("mad_online_requests_total", "Online prediction requests answered, by door (call, async, http) and outcome.",
            new CounterConfiguration { LabelNames = ["door", "outcome"] });
        Latency = factory.CreateHistogram("mad_online_request_duration_seconds", "Time the sidecar took to answer one online request, by door.",
            new HistogramConfiguration { LabelNames = ["door"], Buckets = Histogram.ExponentialBuckets(0.00005, 2, 18) });
        RowsScored = factory.CreateCounter("mad_rows_scored_total", "Rows scored online, by model.", new CounterConfiguration { LabelNames = ["model"] });
        Errors = factory.CreateCounter("mad_online_errors_total", "Online requests that failed, by door and error code.",
            new CounterConfiguration { LabelNames = ["door", "code"] });
        ModelLoads = factory.CreateCounter("mad_model_loads_total", "Model versions loaded into ONNX Runtime for online scoring, by model.",
            new CounterConfiguration { LabelNames = ["model"] });
        LogDropped = factory.CreateCounter("mad_prediction_log_dropped_total", "Prediction log entries dropped because the log writer fell behind.");
        LogWritten = factory.CreateCounter("mad_prediction_log_written_total", "Prediction log entries written to mad.prediction_log.");
    }

    public CollectorRegistry Registry { get; }

    public Counter Requests { get; }

    public Histogram Latency { get; }

    public Counter RowsScored { get; }

    public Counter Errors { get; }

    public Counter ModelLoads { get; }

    public Counter LogDropped { get; }

    public Counter LogWritten { get; }
}

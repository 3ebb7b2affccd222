using ModelAsData.Postgres.Streaming;
using ModelAsData.Sidecar.Requests;
using Prometheus;

namespace ModelAsData.Sidecar.Streaming;

/// <summary>Streaming's Prometheus metrics, in the sidecar's registry (served at <c>/metrics</c>), by prediction table.</summary>
internal sealed class StreamMetrics
{
    public StreamMetrics(RequestMetrics metrics)
    {
        var factory = Metrics.WithCustomRegistry(metrics.Registry);
        var byTable = new[] { "table" };
        Rows = factory.CreateCounter("mad_stream_rows_total", "Rows scored by streaming, by prediction table.", new CounterConfiguration { LabelNames = byTable });
        RowsFailed = factory.CreateCounter("mad_stream_rows_failed_total", "Streamed rows written with an error, by prediction table.", new CounterConfiguration { LabelNames = byTable });
        Deleted = factory.CreateCounter("mad_stream_predictions_deleted_total", "Predictions deleted because their source rows were, by prediction table.", new CounterConfiguration { LabelNames = byTable });
        Batches = factory.CreateCounter("mad_stream_batches_total", "Streaming batches, by prediction table and outcome (ok, error).",
            new CounterConfiguration { LabelNames = ["table", "outcome"] });
        BatchDuration = factory.CreateHistogram("mad_stream_batch_duration_seconds", "Time one streaming batch took (claim, read, score, upsert, commit), by prediction table.",
            new HistogramConfiguration { LabelNames = byTable, Buckets = Histogram.ExponentialBuckets(0.0001, 2, 16) });
        Waiting = factory.CreateGauge("mad_stream_waiting_keys", "Keys waiting in the outbox (mad_outbox.<name>), by prediction table (sampled every few seconds).", new GaugeConfiguration { LabelNames = byTable });
        OldestAge = factory.CreateGauge("mad_stream_oldest_waiting_seconds", "Age of the oldest key waiting in the outbox (mad_outbox.<name>), by prediction table (sampled every few seconds).",
            new GaugeConfiguration { LabelNames = byTable });
        RowsPerSecond = factory.CreateGauge("mad_stream_rows_per_second", "Rows this sidecar streamed per second over the last report interval, by prediction table.",
            new GaugeConfiguration { LabelNames = byTable });
    }

    /// <summary>Counts one batch that drained keys: the batch, its rows, those with an error, and the predictions it deleted.</summary>
    public void Count(string table, StreamBatchResult result)
    {
        Batches.WithLabels(table, "ok").Inc();
        Rows.WithLabels(table).Inc(result.Rows);
        RowsFailed.WithLabels(table).Inc(result.Failed);
        Deleted.WithLabels(table).Inc(result.Deleted);
    }

    public Counter Rows { get; }

    public Counter RowsFailed { get; }

    public Counter Deleted { get; }

    public Counter Batches { get; }

    public Histogram BatchDuration { get; }

    public Gauge Waiting { get; }

    public Gauge OldestAge { get; }

    public Gauge RowsPerSecond { get; }
}

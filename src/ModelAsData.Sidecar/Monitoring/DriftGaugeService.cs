using System.Globalization;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using ModelAsData.Postgres;
using ModelAsData.Sidecar.Requests;
using Npgsql;
using Prometheus;

namespace ModelAsData.Sidecar.Monitoring;

/// <summary>
/// Drift as Prometheus gauges on the sidecar's <c>/metrics</c> (issue 16): every third heartbeat interval (30 s by
/// default) one read of <c>mad.drift_gauges()</c> (026_3: mad.drift's default window, one day ending with the
/// current hour, of every table and <c>online:&lt;model&gt;</c> counted in it) sets, per table, version, column, kind
/// and metric, <c>mad_drift_value</c>, <c>mad_drift_threshold</c> and <c>mad_drift_drifted</c> (1 or 0), and per
/// column <c>mad_drift_rows</c>; series that are no longer in the window are removed. A metric without a value (no
/// rows) has no series. A failed read keeps the last values and is logged. Own timer, so slow reads never delay the
/// heartbeat.
/// </summary>
internal sealed partial class DriftGaugeService : BackgroundService
{
    private static readonly string[] s_labels = ["table", "version", "column", "kind", "metric"];
    private static readonly string[] s_rowLabels = ["table", "version", "column", "kind"];

    private readonly NpgsqlDataSource _dataSource;
    private readonly SidecarOptions _options;
    private readonly ILogger _logger;
    private readonly Gauge _value;
    private readonly Gauge _threshold;
    private readonly Gauge _drifted;
    private readonly Gauge _rows;
    private HashSet<string[]> _series = new(LabelsComparer.Instance);
    private HashSet<string[]> _rowSeries = new(LabelsComparer.Instance);

    public DriftGaugeService(NpgsqlDataSource dataSource, SidecarOptions options, RequestMetrics metrics, ILogger<DriftGaugeService> logger)
    {
        _dataSource = dataSource;
        _options = options;
        _logger = logger;
        var factory = Metrics.WithCustomRegistry(metrics.Registry);
        _value = factory.CreateGauge("mad_drift_value", "Drift of a profiled column in mad.drift's current window (1 day ending with this hour), by table, version, column, kind and metric.",
            new GaugeConfiguration { LabelNames = s_labels });
        _threshold = factory.CreateGauge("mad_drift_threshold", "The sample-size-aware threshold the drift value is compared with (docs/MONITORING.md).",
            new GaugeConfiguration { LabelNames = s_labels });
        _drifted = factory.CreateGauge("mad_drift_drifted", "1 when the metric drifted in the current window, else 0.", new GaugeConfiguration { LabelNames = s_labels });
        _rows = factory.CreateGauge("mad_drift_rows", "Rows counted in the current window for a profiled column (n_current).", new GaugeConfiguration { LabelNames = s_rowLabels });
    }

    /// <summary>How often the gauges are read again.</summary>
    public TimeSpan Interval => _options.HeartbeatInterval * 3;

    /// <summary>Reads mad.drift_gauges() once and sets the gauges from it.</summary>
    public async Task RefreshAsync(CancellationToken cancellationToken)
    {
        var series = new HashSet<string[]>(LabelsComparer.Instance);
        var rowSeries = new HashSet<string[]>(LabelsComparer.Instance);
        await using (var connection = await _dataSource.OpenConnectionAsync(cancellationToken))
        await using (var command = new NpgsqlCommand(
            "SELECT prediction_table, version, \"column\", kind, metric, value, threshold, drifted, n_current FROM mad.drift_gauges()", connection))
        await using (var reader = await command.ExecuteReaderAsync(cancellationToken))
        {
            while (await reader.ReadAsync(cancellationToken))
            {
                var rowLabels = new[] { reader.GetString(0), reader.GetInt32(1).ToString(CultureInfo.InvariantCulture), reader.GetString(2), reader.GetString(3) };
                if (rowSeries.Add(rowLabels))
                {
                    _rows.WithLabels(rowLabels).Set(reader.GetInt64(8));
                }

                if (reader.IsDBNull(5))
                {
                    continue;
                }

                var labels = new[] { rowLabels[0], rowLabels[1], rowLabels[2], rowLabels[3], reader.GetString(4) };
                series.Add(labels);
                _value.WithLabels(labels).Set(reader.GetDouble(5));
                _threshold.WithLabels(labels).Set(reader.IsDBNull(6) ? double.NaN : reader.GetDouble(6));
                _drifted.WithLabels(labels).Set(reader.GetBoolean(7) ? 1 : 0);
            }
        }

        foreach (var gone in _series.Where(s => !series.Contains(s)))
        {
            _value.RemoveLabelled(gone);
            _threshold.RemoveLabelled(gone);
            _drifted.RemoveLabelled(gone);
        }

        foreach (var gone in _rowSeries.Where(s => !rowSeries.Contains(s)))
        {
            _rows.RemoveLabelled(gone);
        }

        (_series, _rowSeries) = (series, rowSeries);
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(Interval);
        do
        {
            try
            {
                await RefreshAsync(stoppingToken);
            }
            catch (Exception e) when (e is NpgsqlException or TimeoutException or InvalidOperationException)
            {
                LogRefreshFailed(_logger, e);
            }
        }
        while (await WaitAsync(timer, stoppingToken));
    }

    private static async Task<bool> WaitAsync(PeriodicTimer timer, CancellationToken stoppingToken)
    {
        try
        {
            return await timer.WaitForNextTickAsync(stoppingToken);
        }
        catch (OperationCanceledException)
        {
            return false;
        }
    }

    [LoggerMessage(EventId = Protocol.LogEvents.DriftGaugesFailed, Level = LogLevel.Warning, Message = "Reading mad.drift_gauges() failed; the drift gauges keep their last values")]
    private static partial void LogRefreshFailed(ILogger logger, Exception exception);
}

using System.Globalization;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using ModelAsData.Postgres;
using ModelAsData.Sidecar.Requests;
using Npgsql;

namespace ModelAsData.Sidecar.Monitoring;

/// <summary>
/// Model rot as an alert (issue 17, 042): every <c>outcome_gauge_seconds</c> (mad.settings, 300 by default) one read
/// of <c>mad.outcome_gauges()</c> sets, per prediction table, version, arm and metric that has a floor
/// (<c>mad.set_outcome_floor</c>), <c>mad_outcome_value</c> (the metric of the latest window with enough labels),
/// <c>mad_outcome_floor</c>, <c>mad_outcome_below_floor</c> (1 when the value is worse than the floor: the series to
/// alert on) and <c>mad_outcome_labeled</c>; and per table <c>mad_outcome_read_failed</c>, 1 while its outcomes cannot
/// be read (the reason is logged). Series no longer in a read are removed. A failed read keeps the last values.
/// </summary>
internal sealed partial class OutcomeGaugeService : BackgroundService
{
    private static readonly string[] s_labels = ["table", "version", "arm", "metric"];
    private static readonly TimeSpan s_defaultInterval = TimeSpan.FromMinutes(5);

    private readonly NpgsqlDataSource _dataSource;
    private readonly ILogger _logger;
    private readonly Prometheus.Gauge _value;
    private readonly Prometheus.Gauge _floor;
    private readonly Prometheus.Gauge _belowFloor;
    private readonly Prometheus.Gauge _labeled;
    private readonly Prometheus.Gauge _readFailed;
    private HashSet<string[]> _series = new(LabelsComparer.Instance);
    private HashSet<string> _failed = [];

    public OutcomeGaugeService(NpgsqlDataSource dataSource, RequestMetrics metrics, ILogger<OutcomeGaugeService> logger)
    {
        _dataSource = dataSource;
        _logger = logger;
        var factory = Prometheus.Metrics.WithCustomRegistry(metrics.Registry);
        var labelled = new Prometheus.GaugeConfiguration { LabelNames = s_labels };
        _value = factory.CreateGauge("mad_outcome_value", "A metric on outcomes of a served version and arm, in its latest window with enough labels (mad.set_outcome_floor).", labelled);
        _floor = factory.CreateGauge("mad_outcome_floor", "The floor set for the metric (a ceiling for log_loss, ece, mae, rmse and mape).", labelled);
        _belowFloor = factory.CreateGauge("mad_outcome_below_floor", "1 when the metric is worse than its floor, else 0: alert on it.", labelled);
        _labeled = factory.CreateGauge("mad_outcome_labeled", "Labelled rows in the window the metric was computed from.", labelled);
        _readFailed = factory.CreateGauge("mad_outcome_read_failed", "1 while a prediction table's outcomes cannot be read for its floors (the sidecar logs why).",
            new Prometheus.GaugeConfiguration { LabelNames = ["table"] });
    }

    /// <summary>Reads mad.outcome_gauges() once and sets the gauges from it.</summary>
    public async Task RefreshAsync(CancellationToken cancellationToken)
    {
        var series = new HashSet<string[]>(LabelsComparer.Instance);
        var failed = new HashSet<string>(StringComparer.Ordinal);
        await using (var connection = await _dataSource.OpenConnectionAsync(cancellationToken))
        await using (var command = new NpgsqlCommand(
            "SELECT prediction_table, version, arm, metric, value, floor, below_floor, n_labeled, error FROM mad.outcome_gauges()", connection) { CommandTimeout = 0 })
        await using (var reader = await command.ExecuteReaderAsync(cancellationToken))
        {
            while (await reader.ReadAsync(cancellationToken))
            {
                var table = reader.GetString(0);
                if (!reader.IsDBNull(8))
                {
                    if (failed.Add(table))
                    {
                        LogReadFailed(_logger, table, reader.GetString(8));
                    }

                    continue;
                }

                var labels = new[] { table, reader.GetInt32(1).ToString(CultureInfo.InvariantCulture), reader.GetString(2), reader.GetString(3) };
                series.Add(labels);
                _value.WithLabels(labels).Set(reader.GetDouble(4));
                _floor.WithLabels(labels).Set(reader.GetDouble(5));
                _belowFloor.WithLabels(labels).Set(reader.GetBoolean(6) ? 1 : 0);
                _labeled.WithLabels(labels).Set(reader.GetInt64(7));
            }
        }

        foreach (var gone in _series.Where(s => !series.Contains(s)))
        {
            _value.RemoveLabelled(gone);
            _floor.RemoveLabelled(gone);
            _belowFloor.RemoveLabelled(gone);
            _labeled.RemoveLabelled(gone);
        }

        foreach (var table in failed)
        {
            _readFailed.WithLabels(table).Set(1);
        }

        foreach (var recovered in _failed.Where(t => !failed.Contains(t)))
        {
            _readFailed.RemoveLabelled(recovered);
        }

        (_series, _failed) = (series, failed);
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        while (!stoppingToken.IsCancellationRequested)
        {
            var interval = s_defaultInterval;
            try
            {
                interval = await IntervalAsync(stoppingToken);
                await RefreshAsync(stoppingToken);
            }
            catch (Exception e) when (e is NpgsqlException or TimeoutException or InvalidOperationException)
            {
                LogRefreshFailed(_logger, e);
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
            {
                return;
            }

            try
            {
                await Task.Delay(interval, stoppingToken);
            }
            catch (OperationCanceledException)
            {
                return;
            }
        }
    }

    /// <summary>outcome_gauge_seconds, read at every turn so that a DBA's change applies without a restart.</summary>
    private async Task<TimeSpan> IntervalAsync(CancellationToken cancellationToken)
    {
        await using var command = _dataSource.CreateCommand("SELECT value FROM mad.settings WHERE name = 'outcome_gauge_seconds'");
        var value = await command.ExecuteScalarAsync(cancellationToken) as string;
        return int.TryParse(value, NumberStyles.Integer, CultureInfo.InvariantCulture, out var seconds) && seconds > 0
            ? TimeSpan.FromSeconds(seconds)
            : s_defaultInterval;
    }

    [LoggerMessage(EventId = Protocol.LogEvents.OutcomeGaugesFailed, Level = LogLevel.Warning, Message = "Reading mad.outcome_gauges() failed; the outcome gauges keep their last values")]
    private static partial void LogRefreshFailed(ILogger logger, Exception exception);

    [LoggerMessage(EventId = Protocol.LogEvents.OutcomeGaugeReadFailed, Level = LogLevel.Warning,
        Message = "The outcomes of {Table} could not be read for its floors ({Reason}): mad.outcome_gauges() reads them as mad's owner, which needs SELECT on the outcome source")]
    private static partial void LogReadFailed(ILogger logger, string table, string reason);
}

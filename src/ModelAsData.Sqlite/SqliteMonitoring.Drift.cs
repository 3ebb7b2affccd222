using Dapper;
using ModelAsData.Core;
using ModelAsData.Core.Monitoring;

namespace ModelAsData.Sqlite;

/// <summary>Drift from the profile counts, in mad.drift's windows and order (sql/postgres/018_drift.sql).</summary>
public sealed partial class SqliteMonitoring
{
    public async Task<IReadOnlyList<DriftRow>> DriftAsync(string table, DateTimeOffset? since, TimeSpan window, CancellationToken cancellationToken = default)
    {
        var rows = new List<DriftRow>();
        foreach (var c in await CountsAsync(table, since, window, cancellationToken))
        {
            foreach (var m in DriftEvaluator.Evaluate(c.Baseline, c.Current, c.CurrentNull))
            {
                rows.Add(new DriftRow(c.Start, c.End, c.Version, c.Baseline.Column, Kind(c.Baseline), m.Metric, m.Value, m.Threshold, m.Drifted,
                    c.Baseline.Rows, c.Current.Sum() + c.CurrentNull, c.Baseline.Reference));
            }
        }

        return rows;
    }

    public async Task<IReadOnlyList<HistogramBin>> HistogramsAsync(string table, DateTimeOffset? since, TimeSpan window, CancellationToken cancellationToken = default)
    {
        var bins = new List<HistogramBin>();
        foreach (var c in await CountsAsync(table, since, window, cancellationToken))
        {
            bins.Add(new HistogramBin(c.Start, c.End, c.Version, c.Baseline.Column, Kind(c.Baseline), -1, "null", c.Baseline.NullCount, c.CurrentNull));
            for (var b = 0; b < c.Baseline.BinCount; b++)
            {
                bins.Add(new HistogramBin(c.Start, c.End, c.Version, c.Baseline.Column, Kind(c.Baseline), b, c.Baseline.BinLabel(b), c.Baseline.Counts[b], c.Current[b]));
            }
        }

        return bins;
    }

    private static string Kind(ColumnProfile profile) => profile.Kind == ProfileKind.Input ? "input" : "output";

    /// <summary>Per window, version and profiled column: the baseline and the window's counts in its bins.</summary>
    internal async Task<List<(DateTimeOffset Start, DateTimeOffset End, int Version, ColumnProfile Baseline, long[] Current, long CurrentNull)>> CountsAsync(
        string table, DateTimeOffset? since, TimeSpan window, CancellationToken cancellationToken)
    {
        if (window < TimeSpan.FromHours(1) || window.Ticks % TimeSpan.TicksPerHour != 0)
        {
            throw new ModelAsDataException(ErrorCode.InvalidArgument, $"A drift window is a whole number of hours ('1h', '1d'); got {window}. Profile counts are kept per hour.");
        }

        // A prediction table, or 'online:<model>': the rows predict() scored (SqlitePredictCounts).
        var binding = table.StartsWith("online:", StringComparison.Ordinal)
            ? await Connection.QuerySingleOrDefaultAsync<(string Model, long? RefreshedVersion)?>(new CommandDefinition(
                  "SELECT name, NULL FROM mad_models WHERE name = @model", new { model = table["online:".Length..] }, cancellationToken: cancellationToken))
              ?? throw new ModelAsDataException(ErrorCode.NotFound, $"No model '{table["online:".Length..]}' for {table}.")
            : await Connection.QuerySingleOrDefaultAsync<(string Model, long? RefreshedVersion)?>(new CommandDefinition(
                  "SELECT model, refreshed_version FROM mad_prediction_tables WHERE name = @table", new { table }, cancellationToken: cancellationToken))
              ?? throw new ModelAsDataException(ErrorCode.NotFound, $"No prediction table '{table}'. Create one with `mad tables create`.");
        var model = binding.Model.Split('@')[0];
        var now = DateTimeOffset.UtcNow;
        var first = Hour(since ?? (Hour(now) + TimeSpan.FromHours(1) - window));
        var windows = new List<(DateTimeOffset Start, DateTimeOffset End)>();
        for (var start = first; start <= now; start += window)
        {
            windows.Add((start, start + window));
        }

        var counts = windows.Count == 0 ? [] : (await Connection.QueryAsync<(long Version, string WindowStart, string Kind, string Column, long Bin, long Count)>(new CommandDefinition(
            SqliteMonitoringSql.Counts, new { table, since = SqliteTime.ToText(first), until = SqliteTime.ToText(windows[^1].End) }, cancellationToken: cancellationToken))).ToList();
        var versions = counts.Select(c => (int)c.Version).Distinct().Order().ToList();
        // No rows counted in the range: the version last refreshed, else the newest with a baseline, gets its n_current = 0 rows.
        if (versions.Count == 0 && (binding.RefreshedVersion ?? await Connection.ExecuteScalarAsync<long?>(new CommandDefinition(
                "SELECT max(version) FROM mad_baselines WHERE model = @model", new { model }, cancellationToken: cancellationToken))) is { } fallback)
        {
            versions.Add((int)fallback);
        }

        var result = new List<(DateTimeOffset, DateTimeOffset, int, ColumnProfile, long[], long)>();
        foreach (var (start, end) in windows)
        {
            foreach (var version in versions)
            {
                var baseline = (await BaselineAsync(Connection, model, version, cancellationToken)).OrderBy(p => p.Kind).ThenBy(p => p.Column, StringComparer.Ordinal);
                foreach (var profile in baseline)
                {
                    var current = new long[profile.BinCount];
                    long nulls = 0;
                    foreach (var c in counts.Where(c => c.Version == version && c.Kind == Kind(profile) && c.Column == profile.Column))
                    {
                        var at = SqliteTime.Parse(c.WindowStart);
                        if (at >= start && at < end)
                        {
                            if (c.Bin < 0)
                            {
                                nulls += c.Count;
                            }
                            else
                            {
                                current[c.Bin] += c.Count;
                            }
                        }
                    }

                    result.Add((start, end, version, profile, current, nulls));
                }
            }
        }

        return result;
    }

    private static DateTimeOffset Hour(DateTimeOffset time)
    {
        var utc = time.UtcDateTime;
        return new DateTimeOffset(utc.Year, utc.Month, utc.Day, utc.Hour, 0, 0, TimeSpan.Zero);
    }
}

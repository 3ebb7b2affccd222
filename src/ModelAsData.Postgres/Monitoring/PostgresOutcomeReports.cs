using ModelAsData.Core.Monitoring;
using Npgsql;
using NpgsqlTypes;

namespace ModelAsData.Postgres.Monitoring;

/// <summary>
/// mad.performance and mad.compare on PostgreSQL, on the caller's own connection (both run as their caller, so the
/// outcome source is read with the caller's rights), with the NOTICEs they raise (duplicate keys, labels that grade
/// nothing) passed on for the report.
/// </summary>
public sealed class PostgresOutcomeReports(NpgsqlDataSource dataSource) : IOutcomeReports
{
    private const string Performance = """
        SELECT window_start, window_end, version, arm, metric, value, n_labeled, coverage FROM mad.performance($1, "window" => $2, as_of => $3)
        """;

    // mad.performance's rows of the predictions scored since $4 (what mad.compare counts).
    private const string PerformanceSince = """
        SELECT window_start, window_end, version, arm, metric, value, n_labeled, coverage FROM mad.outcome_metrics($1, $2, $3, $4)
        """;

    private const string Compare = """
        SELECT prediction_table, arm, version, n, n_labeled, metric_name, value, difference, ci_low, ci_high, statistic, p_value, test,
               sample_ratio_chi_square, sample_ratio_p_value, sample_ratio_mismatch, significant, verdict
        FROM mad.compare($1, $2, metric => $3, horizon => $4)
        """;

    public Task<PerformanceReport> PerformanceAsync(string table, TimeSpan window, DateTimeOffset? asOf, DateTimeOffset? since = null, CancellationToken cancellationToken = default) =>
        RunAsync(since is null ? Performance : PerformanceSince,
            [new() { Value = table }, new() { Value = window }, Time(asOf), .. since is null ? Array.Empty<NpgsqlParameter>() : [Time(since)]],
            r => new PerformanceRow(r.GetFieldValue<DateTimeOffset>(0), r.GetFieldValue<DateTimeOffset>(1), r.GetInt32(2), r.GetString(3), r.GetString(4), Double(r, 5),
                r.GetInt64(6), r.GetDouble(7)),
            (rows, notices) => new PerformanceReport(rows, notices), cancellationToken);

    public async Task<ComparisonReport> CompareAsync(string model, string alias, string? metric, long horizon, CancellationToken cancellationToken = default) =>
        await RunAsync(Compare, [new() { Value = model }, new() { Value = alias }, new() { Value = (object?)metric ?? DBNull.Value, NpgsqlDbType = NpgsqlDbType.Text }, new() { Value = horizon }],
            r => new ComparisonRow(r.GetString(0), r.GetString(1), r.GetInt32(2), r.IsDBNull(3) ? null : r.GetInt64(3), r.GetInt64(4), r.GetString(5), Double(r, 6),
                Double(r, 7), Double(r, 8), Double(r, 9), Double(r, 10), Double(r, 11), r.IsDBNull(12) ? null : r.GetString(12), Double(r, 13), Double(r, 14),
                r.IsDBNull(15) ? null : r.GetBoolean(15), r.IsDBNull(16) ? null : r.GetBoolean(16), r.IsDBNull(17) ? null : r.GetString(17)),
            (rows, notices) => new ComparisonReport(rows, notices), cancellationToken)
        with { Since = await SplitBeganAsync(model, alias, cancellationToken) };

    private async Task<DateTimeOffset?> SplitBeganAsync(string model, string alias, CancellationToken cancellationToken)
    {
        try
        {
            await using var command = dataSource.CreateCommand("SELECT mad.split_began($1, $2)");
            command.Parameters.Add(new() { Value = model });
            command.Parameters.Add(new() { Value = alias });
            return await command.ExecuteScalarAsync(cancellationToken) is DateTime began ? new DateTimeOffset(began, TimeSpan.Zero) : null;
        }
        catch (Exception e) when (PostgresErrors.CanMap(e))
        {
            throw PostgresErrors.Map(e, dataSource);
        }
    }

    private static NpgsqlParameter Time(DateTimeOffset? at) =>
        new() { Value = at is { } a ? a.UtcDateTime : DBNull.Value, NpgsqlDbType = NpgsqlDbType.TimestampTz };

    private static double? Double(NpgsqlDataReader reader, int ordinal) => reader.IsDBNull(ordinal) ? null : reader.GetDouble(ordinal);

    private async Task<TReport> RunAsync<TRow, TReport>(string sql, NpgsqlParameter[] parameters, Func<NpgsqlDataReader, TRow> read,
        Func<IReadOnlyList<TRow>, IReadOnlyList<string>, TReport> report, CancellationToken cancellationToken)
    {
        var notices = new List<string>();
        try
        {
            await using var connection = await dataSource.OpenConnectionAsync(cancellationToken);
            connection.Notice += (_, e) => notices.Add(e.Notice.MessageText);
            await using var command = new NpgsqlCommand(sql, connection);
            command.Parameters.AddRange(parameters);
            await using var reader = await command.ExecuteReaderAsync(cancellationToken);
            var rows = new List<TRow>();
            while (await reader.ReadAsync(cancellationToken))
            {
                rows.Add(read(reader));
            }

            return report(rows, notices);
        }
        catch (Exception e) when (PostgresErrors.CanMap(e))
        {
            throw PostgresErrors.Map(e, dataSource);
        }
    }
}

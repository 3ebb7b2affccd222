using System.Diagnostics;
using System.Globalization;
using Dapper;
using Npgsql;
using Spectre.Console;

namespace ModelAsData.Bench;

/// <summary>
/// <c>mad bench --section drift</c> (docs/BENCHMARKS.md, issue 16): <c>mad.drift</c> from the stored profile counts
/// against the same PSI computed by a full scan of the source in SQL, over the same rows × 100 numeric columns,
/// measured in the same run. The counts are made from the source itself (DriftSql/counts.sql, not timed), so the
/// two give the same PSI, which the bench checks before it times anything. Goal: drift ≥ 100× faster, under 1 s.
/// </summary>
internal sealed class DriftBench(string db, int rows, int rounds, IAnsiConsole console)
{
    private const int Columns = 100;
    private const string Daily = "SELECT \"column\", metric, value FROM mad.drift('bench_drift', now() - interval '23 hours', '1 day')";
    private const string Hourly = "SELECT \"column\", metric, value FROM mad.drift('bench_drift', now() - interval '23 hours', '1 hour')";

    public async Task RunAsync(bool markdown, CancellationToken cancellationToken)
    {
        await using var dataSource = Postgres.PostgresDataSource.Create(db, "mad bench drift");
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken);
        var values = string.Join(", ", Enumerable.Range(1, Columns).Select(c => string.Create(CultureInfo.InvariantCulture, $"({c}, c{c}::float8)")));
        var columns = string.Join(", ", Enumerable.Range(1, Columns).Select(c => string.Create(CultureInfo.InvariantCulture, $"least(random(), 0.999999)::real AS c{c}")));
        console.MarkupLineInterpolated($"[grey]making the source ({rows:N0} rows × {Columns} columns) and its counts (not timed)[/]");
        await ExecuteAsync(connection, Script("setup.sql").Replace("{rows}", rows.ToString(CultureInfo.InvariantCulture), StringComparison.Ordinal)
            .Replace("{columns}", columns, StringComparison.Ordinal), cancellationToken);
        await ExecuteAsync(connection, Script("counts.sql").Replace("{values}", values, StringComparison.Ordinal), cancellationToken);
        var scan = Script("scan_psi.sql").Replace("{values}", values, StringComparison.Ordinal);
        var countRows = await connection.ExecuteScalarAsync<long>("SELECT count(*) FROM mad.profile_counts WHERE prediction_table = 'bench_drift'");

        var times = new Dictionary<string, List<double>> { ["drift, 1 window"] = [], ["drift, 24 hourly windows"] = [], ["full-scan PSI"] = [] };
        for (var round = 1; round <= rounds; round++)
        {
            var (daily, dailySeconds) = await TimeAsync(connection, Daily, cancellationToken);
            var (_, hourlySeconds) = await TimeAsync(connection, Hourly, cancellationToken);
            var (scanned, scanSeconds) = await TimeAsync(connection, scan, cancellationToken);
            if (round == 1)
            {
                Check(daily, scanned);
            }

            times["drift, 1 window"].Add(dailySeconds);
            times["drift, 24 hourly windows"].Add(hourlySeconds);
            times["full-scan PSI"].Add(scanSeconds);
            console.MarkupLineInterpolated(CultureInfo.InvariantCulture,
                $"[grey]round {round}/{rounds}: drift {dailySeconds:0.000} s, hourly {hourlySeconds:0.000} s, full scan {scanSeconds:0.0} s[/]");
        }

        var drift = Median(times["drift, 1 window"]);
        var full = Median(times["full-scan PSI"]);
        var table = new Table().AddColumns("measurement", "median s", "min", "max");
        foreach (var (name, list) in times)
        {
            table.AddRow(name, Seconds(Median(list)), Seconds(list.Min()), Seconds(list.Max()));
        }

        console.Write(table);
        console.MarkupLineInterpolated(CultureInfo.InvariantCulture,
            $"mad.drift from {countRows:N0} count rows ({rows:N0} rows × {Columns} columns, 12 bins, 24 hours) = [bold]{full / drift:0}×[/] faster than the full scan (goal ≥ 100×, under 1 s: {drift:0.000} s); median of {rounds}.");
        if (markdown)
        {
            Console.WriteLine("| measurement | median s | min | max |");
            Console.WriteLine("|---|---:|---:|---:|");
            foreach (var (name, list) in times)
            {
                Console.WriteLine($"| {name} | {Seconds(Median(list))} | {Seconds(list.Min())} | {Seconds(list.Max())} |");
            }

            Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"\nfull scan / drift = {full / drift:0}×"));
        }

        await ExecuteAsync(connection, """
            DELETE FROM mad.profile_counts WHERE prediction_table = 'bench_drift'; DELETE FROM mad.baselines WHERE model = 'bench_drift';
            DELETE FROM mad.prediction_tables WHERE name = 'bench_drift'; DELETE FROM mad.model_versions WHERE model = 'bench_drift';
            DELETE FROM mad.models WHERE name = 'bench_drift'; DROP TABLE public.bench_drift_source;
            """, cancellationToken);
    }

    /// <summary>The drift's PSI of every column is the full scan's: the counts are the source's rows, binned as the scan bins them.</summary>
    private static void Check(List<(string Column, string Metric, double? Value)> drift, List<(string Column, string Metric, double? Value)> scanned)
    {
        var psi = drift.Where(r => r.Metric == "psi").ToDictionary(r => r.Column, r => r.Value);
        if (psi.Count != Columns || scanned.Count != Columns)
        {
            throw new InvalidOperationException($"mad.drift gave the PSI of {psi.Count} columns and the scan of {scanned.Count}, not {Columns} each.");
        }

        foreach (var (column, _, value) in scanned)
        {
            if (psi[column] is not { } fromCounts || Math.Abs(fromCounts - value!.Value) > 1e-9)
            {
                throw new InvalidOperationException($"PSI of {column}: {psi[column]} from the counts, {value} from the scan; they must be equal.");
            }
        }
    }

    /// <summary>Runs a query to its last row; returns its rows (column, metric, value; the scan's rows have no metric) and seconds.</summary>
    private static async Task<(List<(string Column, string Metric, double? Value)> Rows, double Seconds)> TimeAsync(NpgsqlConnection connection, string sql, CancellationToken cancellationToken)
    {
        var started = Stopwatch.GetTimestamp();
        var result = new List<(string, string, double?)>();
        await using (var command = new NpgsqlCommand(sql, connection) { CommandTimeout = 0 })
        await using (var reader = await command.ExecuteReaderAsync(cancellationToken))
        {
            while (await reader.ReadAsync(cancellationToken))
            {
                result.Add(reader.FieldCount == 3
                    ? (reader.GetString(0), reader.GetString(1), reader.IsDBNull(2) ? null : reader.GetDouble(2))
                    : (reader.GetString(0), "psi", reader.GetDouble(1)));
            }
        }

        return (result, Stopwatch.GetElapsedTime(started).TotalSeconds);
    }

    private static async Task ExecuteAsync(NpgsqlConnection connection, string sql, CancellationToken cancellationToken)
    {
        await using var command = new NpgsqlCommand(sql, connection) { CommandTimeout = 0 };
        await command.ExecuteNonQueryAsync(cancellationToken);
    }

    private static string Script(string name)
    {
        using var stream = typeof(DriftBench).Assembly.GetManifestResourceStream("ModelAsData.Bench.DriftSql." + name)
            ?? throw new InvalidOperationException($"The bench script DriftSql/{name} is not embedded.");
        using var reader = new StreamReader(stream);
        return reader.ReadToEnd();
    }

    private static double Median(List<double> values) => values.Order().ElementAt(values.Count / 2);

    private static string Seconds(double seconds) => seconds.ToString(seconds < 10 ? "0.000" : "0.0", CultureInfo.InvariantCulture);
}

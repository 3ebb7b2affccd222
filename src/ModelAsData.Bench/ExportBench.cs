using System.Diagnostics;
using System.Text.Json.Nodes;
using Dapper;
using Microsoft.Extensions.Hosting;
using ModelAsData.Core;
using ModelAsData.Core.Export;
using ModelAsData.Core.Registry;
using ModelAsData.Postgres.Export;
using ModelAsData.Postgres.Jobs;
using ModelAsData.Postgres.Registry;
using ModelAsData.Sidecar;
using Npgsql;

namespace ModelAsData.Bench;

/// <summary>
/// <c>mad bench --section export</c> (docs/BENCHMARKS.md, issue 17): <c>mad export training-set</c> of a prediction
/// table with <c>rows</c> labelled keys (features, label, served prediction), against bare COPYs of the same columns
/// to a CSV file measured in the same rounds: of a table that already holds exactly the exported rows (the I/O
/// floor), and of the plain join a user would write by hand (source ⋈ outcomes ⋈ history on the key, no latest-label,
/// point-in-time, hashing or mixing). Goal: the CSV export ≥ 0.5× the bare COPY of the table. Works in tables of its
/// own and drops them afterwards.
/// </summary>
internal sealed class ExportBench(string connectionString, int rows, int rounds, Action<string> log)
{
    public const string Csv = "export training-set, csv";
    public const string Mixed = "export training-set, csv, --mix 0.5 --holdout 0.2";
    public const string Parquet = "export training-set, parquet";
    public const string BareTable = "bare COPY of a table of the same columns to csv";
    public const string BareJoin = "bare COPY of the plain join to csv";

    public async Task<IReadOnlyList<Measurement>> RunAsync(CancellationToken cancellationToken)
    {
        var suffix = Guid.NewGuid().ToString("N")[..8];
        var table = $"mad_bench_export_{suffix}";
        var directory = Directory.CreateTempSubdirectory("mad-bench-export-").FullName;
        await using var registry = await PostgresModelRegistry.OpenAsync(connectionString, cancellationToken);
        await registry.MigrateAsync(cancellationToken);
        try
        {
            await SetUpAsync(registry, table, suffix, cancellationToken);
            return await MeasureAsync(registry.DataSource, table, directory, cancellationToken);
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
            await using var connection = await registry.DataSource.OpenConnectionAsync(CancellationToken.None);
            await connection.ExecuteAsync($"""
                DELETE FROM mad.prediction_tables WHERE name = '{table}';
                DROP TABLE IF EXISTS mad_out.{table}, mad_history.{table}, public.{table}_flowers, public.{table}_events, public.{table}_flat;
                """);
        }
    }

    private async Task SetUpAsync(PostgresModelRegistry registry, string table, string suffix, CancellationToken cancellationToken)
    {
        log($"loading {rows:N0} flowers, labels and served predictions");
        await using (var connection = await registry.DataSource.OpenConnectionAsync(cancellationToken))
        {
            // Half the labels arrive in October (old), half in November (new); each key was served once, in September.
            await connection.ExecuteAsync(new CommandDefinition($"""
                SELECT setseed(0.42);
                CREATE TABLE public.{table}_flowers (id bigint PRIMARY KEY, sepal_length real, sepal_width real, petal_length real, petal_width real);
                INSERT INTO public.{table}_flowers
                SELECT g, 4.3 + random() * 3.6, 2.0 + random() * 2.4, 1.0 + random() * 5.9, 0.1 + random() * 2.4 FROM generate_series(1, {rows}) g;
                CREATE TABLE public.{table}_events (id bigint, label text, observed_at timestamptz);
                INSERT INTO public.{table}_events
                SELECT g, (g % 3)::text, timestamptz '2026-10-01 00:00+00' + (g % 61) * interval '1 day' + (g % 86400) * interval '1 second' FROM generate_series(1, {rows}) g;
                """, commandTimeout: 0, cancellationToken: cancellationToken));
        }

        var bytes = await File.ReadAllBytesAsync(ShippedModels.Path(EmbeddedBench.Model), cancellationToken);
        var model = $"bench_export_{suffix}";
        var features = new JsonObject { ["float_input"] = new JsonArray("sepal_length", "sepal_width", "petal_length", "petal_width") };
        using (var host = SidecarHost.Build(connectionString, new SidecarOptions { SidecarId = $"bench-{suffix}", PollInterval = TimeSpan.FromSeconds(5) }))
        {
            await host.StartAsync(cancellationToken);
            var pushed = await registry.PushAsync(model, bytes, new JsonObject { ["features"] = features }, cancellationToken);
            await registry.WaitForValidationAsync(model, pushed.Version, TimeSpan.FromSeconds(60), cancellationToken);
            await new PostgresPredictionTables(registry).CreateAsync(new PredictionTableSpec(table, $"{table}_flowers", ["id"], model, null), cancellationToken);
            await host.StopAsync(cancellationToken);
        }

        await using (var connection = await registry.DataSource.OpenConnectionAsync(cancellationToken))
        {
            await connection.ExecuteAsync(new CommandDefinition($"""
                SELECT mad.set_outcomes('{table}', source => 'public.{table}_events', key => '{"{id}"}', label => 'label', observed_at => 'observed_at');
                INSERT INTO mad_history.{table} (key, version, arm, outputs, scored_at)
                SELECT g::text, 1, 'champion', jsonb_build_object('label', g % 3, 'probability_0', 0.2, 'probability_1', 0.3, 'probability_2', 0.5), timestamptz '2026-09-30 00:00+00'
                FROM generate_series(1, {rows}) g;
                CREATE TABLE public.{table}_flat AS
                SELECT f.*, o.label, o.observed_at, h.version AS served_version, h.arm AS served_arm, h.outputs AS served_outputs, h.scored_at AS served_at
                FROM public.{table}_flowers f JOIN public.{table}_events o USING (id) JOIN mad_history.{table} h ON h.key = f.id::text;
                """, commandTimeout: 0, cancellationToken: cancellationToken));
            await connection.ExecuteAsync(new CommandDefinition($"VACUUM ANALYZE public.{table}_flowers, public.{table}_events, mad_history.{table}, public.{table}_flat",
                commandTimeout: 0, cancellationToken: cancellationToken));
        }
    }

    private async Task<IReadOnlyList<Measurement>> MeasureAsync(NpgsqlDataSource dataSource, string table, string directory, CancellationToken cancellationToken)
    {
        var exports = new PostgresTrainingSets(dataSource);
        var cutoff = new DateTimeOffset(2026, 12, 31, 0, 0, 0, TimeSpan.Zero);
        var results = new Dictionary<string, List<double>>(StringComparer.Ordinal);
        var bareJoin = $"""
            SELECT f.id, f.sepal_length, f.sepal_width, f.petal_length, f.petal_width, o.label, o.observed_at, h.version, h.arm, h.outputs, h.scored_at
            FROM public.{table}_flowers f JOIN public.{table}_events o USING (id) JOIN mad_history.{table} h ON h.key = f.id::text
            """;
        for (var round = 0; round <= rounds; round++)
        {
            // Round 0 warms the caches and the JIT, untimed.
            var timed = round > 0;
            log(timed ? $"round {round}/{rounds}" : "warm-up round (not timed)");
            await TimeAsync(results, timed, BareTable, () => BareCopyAsync(dataSource, $"SELECT * FROM public.{table}_flat", Path.Combine(directory, "bare.csv"), cancellationToken));
            await TimeAsync(results, timed, Csv, async () => Rows(await exports.ExportAsync(
                new TrainingSetRequest { PredictionTable = table, Out = Path.Combine(directory, "train.csv"), Cutoff = cutoff }, cancellationToken: cancellationToken)));
            await TimeAsync(results, timed, BareJoin, () => BareCopyAsync(dataSource, bareJoin, Path.Combine(directory, "join.csv"), cancellationToken));
            await TimeAsync(results, timed, Mixed, async () => Rows(await exports.ExportAsync(
                new TrainingSetRequest
                {
                    PredictionTable = table, Out = Path.Combine(directory, "mixed.csv"), Cutoff = cutoff,
                    NewSince = new DateTimeOffset(2026, 11, 1, 0, 0, 0, TimeSpan.Zero), Mix = 0.5, Holdout = 0.2,
                }, cancellationToken: cancellationToken)));
            await TimeAsync(results, timed, Parquet, async () => Rows(await exports.ExportAsync(
                new TrainingSetRequest { PredictionTable = table, Out = Path.Combine(directory, "train.parquet"), Format = TrainingSetFormat.Parquet, Cutoff = cutoff },
                cancellationToken: cancellationToken)));
        }

        return [.. new[] { Csv, Mixed, Parquet, BareTable, BareJoin }.Select(n => new Measurement(n, results[n]))];
    }

    private static long Rows(TrainingSetManifest manifest) => manifest.Files.Sum(f => f.Rows);

    private static async Task TimeAsync(Dictionary<string, List<double>> results, bool timed, string name, Func<Task<long>> run)
    {
        var watch = Stopwatch.StartNew();
        var written = await run();
        if (timed)
        {
            (results.TryGetValue(name, out var list) ? list : results[name] = []).Add(written / watch.Elapsed.TotalSeconds);
        }
    }

    /// <summary>The reference: COPY (query) TO STDOUT (FORMAT csv, HEADER) into a file, read the way the export reads it.</summary>
    private static async Task<long> BareCopyAsync(NpgsqlDataSource dataSource, string query, string path, CancellationToken cancellationToken)
    {
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken);
        var chars = new char[1 << 15];
        var bytes = new byte[System.Text.Encoding.UTF8.GetMaxByteCount(chars.Length)];
        long lines = 0;
        await using (var file = new FileStream(path, FileMode.Create, FileAccess.Write, FileShare.None, 1 << 16, useAsync: true))
        using (var copy = await connection.BeginTextExportAsync($"COPY ({query}) TO STDOUT (FORMAT csv, HEADER true)", cancellationToken))
        {
            int read;
            while ((read = await copy.ReadAsync(chars.AsMemory(), cancellationToken)) > 0)
            {
                var n = System.Text.Encoding.UTF8.GetBytes(chars, 0, read, bytes, 0);
                await file.WriteAsync(bytes.AsMemory(0, n), cancellationToken);
                lines += chars.AsSpan(0, read).Count('\n');
            }
        }

        return lines - 1;
    }
}

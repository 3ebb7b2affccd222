using System.Globalization;
using ModelAsData.Core;
using ModelAsData.Core.Export;
using ModelAsData.IntegrationTests.Batch;
using ModelAsData.Postgres.Export;
using ModelAsData.Sqlite;

namespace ModelAsData.IntegrationTests.Outcomes;

/// <summary>
/// mad export training-set on a SQLite file: the same rows in the same order as PostgreSQL's export of the same data
/// and seed (training and holdout, exact mix, the cutoff) and the same bytes, on every run, and the CLI's messages.
/// The data: 3,000 flowers, 1,500 labelled in October (old), 1,250 on 2026-11-05 (new), 250 after the cutoff.
/// </summary>
public sealed class SqliteTrainingSetTests(PostgresDatabase database) : MadCliTests(database), IDisposable
{
    private static readonly DateTimeOffset s_newSince = new(2026, 11, 1, 0, 0, 0, TimeSpan.Zero);
    private static readonly DateTimeOffset s_cutoff = new(2026, 11, 20, 0, 0, 0, TimeSpan.Zero);

    private readonly string _directory = Directory.CreateTempSubdirectory("mad-sqlite-export-").FullName;

    public void Dispose() => Directory.Delete(_directory, recursive: true);

    private sealed record Row(long Id, string Label, DateTimeOffset ObservedAt, string? Version, string? Arm);

    [Fact(Timeout = 180_000)]
    public async Task Both_stores_export_the_same_rows_in_the_same_order_and_sqlite_gives_the_same_bytes_again()
    {
        var (model, tables) = await BatchTables.ReadyModelAsync(Database.DataSource);
        var name = Sql.UniqueName("train");
        // Features as float8, which a SQLite REAL holds exactly: then the files are the same bytes on both stores.
        var source = $"{name}_flowers";
        await Database.DataSource.ExecuteAsync($"""
            CREATE TABLE public.{source} (id bigint PRIMARY KEY, sepal_length float8, sepal_width float8, petal_length float8, petal_width float8);
            INSERT INTO public.{source} SELECT g, 4.3 + (g % 37) * 0.1, 2.0 + (g % 23) * 0.1, 1.0 + (g % 59) * 0.1, 0.1 + (g % 25) * 0.1 FROM generate_series(1, 3000) g;
            """);
        await BatchTables.CreateAsync(tables, name, source, model);
        await Database.DataSource.ExecuteAsync($$"""
            CREATE TABLE public.{{name}}_events (id bigint, label text, observed_at timestamptz);
            INSERT INTO public.{{name}}_events
            SELECT g, (g % 3)::text, CASE WHEN g <= 1500 THEN timestamptz '2026-10-01 00:00+00' + (g % 20) * interval '1 day'
                                          WHEN g <= 2750 THEN timestamptz '2026-11-05 00:00+00'
                                          ELSE timestamptz '2026-12-01 00:00+00' END
            FROM generate_series(1, 3000) g;
            INSERT INTO public.{{name}}_events SELECT g, '0', timestamptz '2026-09-01 00:00+00' FROM generate_series(1, 100) g;   -- older duplicates: the latest wins
            SELECT mad.set_outcomes('{{name}}', source => 'public.{{name}}_events', key => '{id}', label => 'label', observed_at => 'observed_at');
            INSERT INTO mad_history.{{name}} (key, version, arm, outputs, scored_at)
            SELECT g::text, 1 + g % 2, CASE WHEN g % 2 = 0 THEN 'champion' ELSE 'canary' END, jsonb_build_object('label', (g % 3)::text), timestamptz '2026-09-30 00:00+00'
            FROM generate_series(1, 2900) g;
            """);
        await using var twin = await SqliteTwin.CreateAsync(model);
        await twin.CopyAsync(Database.DataSource, name, $"{name}_events", model);
        await twin.CopySourceAsync(Database.DataSource, source);
        TrainingSetRequest Request(string file, long seed, TrainingSetFormat format = TrainingSetFormat.Csv) => new()
        {
            PredictionTable = name, Out = Path.Combine(_directory, file), Format = format, NewSince = s_newSince, Mix = 0.5, Rows = 2_000, Holdout = 0.2, Seed = seed, Cutoff = s_cutoff,
        };

        var postgres = await new PostgresTrainingSets(Database.DataSource).ExportAsync(Request("pg.csv", 3), cancellationToken: Ct);
        var sqlite = new SqliteTrainingSets(twin.Registry);
        var first = await sqlite.ExportAsync(Request("a.csv", 3), Ct);
        var again = await sqlite.ExportAsync(Request("b.csv", 3), Ct);
        var other = await sqlite.ExportAsync(Request("c.csv", 4), Ct);
        var postgresParquet = await new PostgresTrainingSets(Database.DataSource).ExportAsync(Request("pg.parquet", 3, TrainingSetFormat.Parquet), cancellationToken: Ct);
        var sqliteParquet = await sqlite.ExportAsync(Request("a.parquet", 3, TrainingSetFormat.Parquet), Ct);

        foreach (var part in new[] { "pg.csv", "a.csv" })
        {
            Assert.Equal(2_000, ReadCsv(Path.Combine(_directory, part)).Count + ReadCsv(TrainingSetFiles.Holdout(Path.Combine(_directory, part))).Count);
        }

        Assert.Equal(ReadCsv(Path.Combine(_directory, "pg.csv")), ReadCsv(Path.Combine(_directory, "a.csv")));
        Assert.Equal(ReadCsv(Path.Combine(_directory, "pg.holdout.csv")), ReadCsv(Path.Combine(_directory, "a.holdout.csv")));
        Assert.Equal(await File.ReadAllTextAsync(Path.Combine(_directory, "pg.csv"), Ct), await File.ReadAllTextAsync(Path.Combine(_directory, "a.csv"), Ct));
        Assert.Equal(postgres.Files.Select(f => f.Sha256), first.Files.Select(f => f.Sha256)); // the same bytes as PostgreSQL's
        Assert.Equal(postgres.Eligible, first.Eligible);
        Assert.Equal(postgres.Versions, first.Versions);
        Assert.Equal(postgres.Files.Select(f => (f.Part, f.Rows, f.NewRows, f.OldRows)), first.Files.Select(f => (f.Part, f.Rows, f.NewRows, f.OldRows)));
        Assert.Equal(postgres.Command.Replace("pg.csv", "a.csv", StringComparison.Ordinal), first.Command);
        Assert.Equal(first.Files.Select(f => f.Sha256), again.Files.Select(f => f.Sha256));
        Assert.Equal(postgresParquet.Files.Select(f => (f.Format, f.Rows, f.Sha256)), sqliteParquet.Files.Select(f => (f.Format, f.Rows, f.Sha256))); // Parquet too
        Assert.Equal(await File.ReadAllBytesAsync(Path.Combine(_directory, "a.csv"), Ct), await File.ReadAllBytesAsync(Path.Combine(_directory, "b.csv"), Ct));
        Assert.NotEqual(first.Files[0].Sha256, other.Files[0].Sha256);
        var manifest = TrainingSetManifest.Parse(await File.ReadAllTextAsync(Path.Combine(_directory, "a.manifest.json"), Ct));
        Assert.Equal(first.Files[0].Sha256, Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(await File.ReadAllBytesAsync(Path.Combine(_directory, "a.csv"), Ct))));
        Assert.Equal((name, "flowers", $"{name}_events"), (manifest.PredictionTable, manifest.Source, manifest.Outcomes.Source));
        Assert.All(ReadCsv(Path.Combine(_directory, "a.csv")), r => Assert.True(r.ObservedAt <= s_cutoff));

        // Through the CLI: the same verb and options on the file, and what it refuses.
        var cli = await RunWithDbAsync(twin.Path, "export", "training-set", name, "--out", Path.Combine(_directory, "cli.csv"), "--new-since", "2026-11-01", "--mix", "0.5",
            "--rows", "2000", "--holdout", "0.2", "--seed", "3", "--cutoff", "2026-11-20");
        var parquet = await RunWithDbAsync(twin.Path, "export", "training-set", name, "--out", Path.Combine(_directory, "p.parquet"), "--format", "parquet", "--new-since", "2026-11-01",
            "--mix", "0.5", "--rows", "2000", "--holdout", "0.2", "--seed", "3", "--cutoff", "2026-11-20");
        var tooMany = await RunWithDbAsync(twin.Path, "export", "training-set", name, "--out", Path.Combine(_directory, "many.csv"), "--new-since", "2026-11-01", "--mix", "0.5",
            "--rows", "4000", "--cutoff", "2026-11-20");
        Assert.True(cli.ExitCode == 0, cli.Output);
        Assert.Contains($"sha256 {first.Files[0].Sha256}", cli.Output, StringComparison.Ordinal);
        Assert.True(parquet.ExitCode == 0, parquet.Output);
        Assert.Contains($"sha256 {postgresParquet.Files[0].Sha256}", parquet.Output, StringComparison.Ordinal);
        Assert.Equal((int)ErrorCode.InvalidArgument, tooMany.ExitCode);
        Assert.Contains("--rows 2500", tooMany.Output, StringComparison.Ordinal);
        Assert.Empty(Directory.GetFiles(_directory, "*.partial"));
        Assert.False(File.Exists(Path.Combine(_directory, "many.csv")));
    }

    /// <summary>What identifies a row whatever the store: key, label, observed_at and the served version and arm (features print as each store holds them).</summary>
    private static List<Row> ReadCsv(string path)
    {
        var lines = File.ReadAllLines(path);
        Assert.Equal("id,sepal_length,sepal_width,petal_length,petal_width,label,observed_at,served_version,served_arm,served_outputs,served_at,served_device", lines[0]);
        return [.. lines.Skip(1).Select(l => l.Split(',')).Select(f => new Row(long.Parse(f[0], CultureInfo.InvariantCulture), f[5],
            DateTimeOffset.Parse(f[6], CultureInfo.InvariantCulture), f[7].Length == 0 ? null : f[7], f[8].Length == 0 ? null : f[8]))];
    }
}

using System.Globalization;
using System.Security.Cryptography;
using ModelAsData.Core;
using ModelAsData.Core.Export;
using ModelAsData.IntegrationTests.Batch;
using ModelAsData.Postgres.Export;
using Parquet;
using Parquet.Schema;

namespace ModelAsData.IntegrationTests.Outcomes;

/// <summary>
/// mad export training-set on PostgreSQL, against real files: exact mixes, the cutoff, the key-disjoint holdout,
/// reproducibility, the manifest, Parquet read back. The data: 12,000 flowers with labels — 6,000 old (October),
/// 5,000 new (2026-11-05), 1,000 observed after the cutoff (December) — each served once by version 1 in September.
/// </summary>
public sealed class TrainingSetExportTests(PostgresDatabase database) : MadCliTests(database), IDisposable
{
    private static readonly DateTimeOffset s_newSince = new(2026, 11, 1, 0, 0, 0, TimeSpan.Zero);
    private static readonly DateTimeOffset s_cutoff = new(2026, 11, 20, 0, 0, 0, TimeSpan.Zero);

    private readonly string _directory = Directory.CreateTempSubdirectory("mad-export-").FullName;

    public void Dispose() => Directory.Delete(_directory, recursive: true);

    [Fact(Timeout = 120_000)]
    public async Task A_half_mix_of_10000_rows_is_5000_new_and_5000_old_and_no_label_after_the_cutoff()
    {
        var name = await CreateAsync();
        var out_ = Path.Combine(_directory, "mix.csv");

        var manifest = await ExportAsync(name, out_, mix: 0.5, rows: 10_000);
        var rows = ReadCsv(out_);

        Assert.Equal(10_000, rows.Count);
        Assert.Equal(5_000, rows.Count(r => r.ObservedAt >= s_newSince));
        Assert.Equal(5_000, rows.Count(r => r.ObservedAt < s_newSince));
        Assert.All(rows, r => Assert.True(r.ObservedAt <= s_cutoff));
        Assert.Equal(rows.Count, rows.Select(r => r.Id).Distinct().Count());
        Assert.Equal((10_000L, 5_000L, 5_000L), (manifest.Files[0].Rows, manifest.Files[0].NewRows, manifest.Files[0].OldRows));
        Assert.Equal(new TrainingSetEligible(5_000, 6_000, 0, 0, 0, 0), manifest.Eligible);
        Assert.False(File.Exists(TrainingSetFiles.Holdout(out_)));
    }

    [Fact(Timeout = 120_000)]
    public async Task A_mix_there_are_not_enough_rows_for_fails_naming_the_counts_and_writes_nothing()
    {
        var name = await CreateAsync();
        var out_ = Path.Combine(_directory, "short.csv");

        var e = await Assert.ThrowsAsync<ModelAsDataException>(() => ExportAsync(name, out_, mix: 0.5, rows: 12_000));
        var most = await ExportAsync(name, out_, mix: 0.5);

        Assert.Equal(ErrorCode.InvalidArgument, e.Code);
        Assert.Contains("6,000 new + 6,000 old", e.Message, StringComparison.Ordinal);
        Assert.Contains("5,000 new and 6,000 old", e.Message, StringComparison.Ordinal);
        Assert.Contains("--rows 10000", e.Message, StringComparison.Ordinal);
        Assert.Equal(10_000, most.Files[0].Rows);   // without --rows: the largest exact mix
        Assert.Empty(Directory.GetFiles(_directory, "*.partial"));
    }

    [Fact(Timeout = 120_000)]
    public async Task No_key_is_in_both_training_and_holdout_and_the_holdout_is_the_low_buckets_of_the_seed()
    {
        var name = await CreateAsync();
        var out_ = Path.Combine(_directory, "split.csv");

        var manifest = await ExportAsync(name, out_, mix: 0.5, rows: 8_000, holdout: 0.2, seed: 7);
        var training = ReadCsv(out_);
        var holdout = ReadCsv(TrainingSetFiles.Holdout(out_));
        var low = (await Database.DataSource.QueryAsync<long>($"SELECT id FROM public.{name}_events WHERE mad.bucket(7, id::text) < 0.2")).ToHashSet();

        Assert.Empty(training.Select(r => r.Id).Intersect(holdout.Select(r => r.Id)));
        Assert.Equal((6_400, 1_600), (training.Count, holdout.Count));
        Assert.Equal((3_200, 800), (training.Count(r => r.ObservedAt >= s_newSince), holdout.Count(r => r.ObservedAt >= s_newSince)));
        Assert.All(holdout, r => Assert.Contains(r.Id, low));
        Assert.All(training, r => Assert.DoesNotContain(r.Id, low));
        Assert.Equal(["training", "holdout"], manifest.Files.Select(f => f.Part));
    }

    [Fact(Timeout = 120_000)]
    public async Task The_same_seed_gives_the_same_bytes_and_another_seed_other_rows()
    {
        var name = await CreateAsync();
        var first = Path.Combine(_directory, "a.csv");
        var again = Path.Combine(_directory, "b.csv");
        var other = Path.Combine(_directory, "c.csv");

        var a = await ExportAsync(name, first, mix: 0.5, rows: 4_000, holdout: 0.25, seed: 1);
        var b = await ExportAsync(name, again, mix: 0.5, rows: 4_000, holdout: 0.25, seed: 1);
        var c = await ExportAsync(name, other, mix: 0.5, rows: 4_000, holdout: 0.25, seed: 2);

        Assert.Equal(a.Files.Select(f => f.Sha256), b.Files.Select(f => f.Sha256));
        Assert.Equal(await File.ReadAllBytesAsync(first, Ct), await File.ReadAllBytesAsync(again, Ct));
        Assert.NotEqual(a.Files[0].Sha256, c.Files[0].Sha256);
        Assert.NotEqual(ReadCsv(first).Select(r => r.Id).ToHashSet(), ReadCsv(other).Select(r => r.Id).ToHashSet());
    }

    [Fact(Timeout = 120_000)]
    public async Task The_manifest_names_the_sources_cutoffs_and_counts_and_its_sha256_match_the_files()
    {
        var name = await CreateAsync();
        var out_ = Path.Combine(_directory, "named.csv");

        var (exit, output) = await RunAsync("export", "training-set", name, "--out", out_, "--new-since", "2026-11-01", "--mix", "0.5",
            "--rows", "2000", "--holdout", "0.2", "--seed", "3", "--cutoff", "2026-11-20");
        var manifest = TrainingSetManifest.Parse(await File.ReadAllTextAsync(TrainingSetFiles.Manifest(out_), Ct));

        Assert.True(exit == 0, output);
        Assert.Equal(name, manifest.PredictionTable);
        Assert.Equal($"public.{name}_flowers", manifest.Source);
        Assert.Equal(($"public.{name}_events", "label", "observed_at"), (manifest.Outcomes.Source, manifest.Outcomes.LabelColumn, manifest.Outcomes.ObservedAtColumn));
        Assert.Equal(["id"], manifest.Outcomes.KeyColumns);
        Assert.Equal(["id"], manifest.KeyColumns);
        Assert.Equal(["sepal_length", "sepal_width", "petal_length", "petal_width"], manifest.FeatureColumns);
        Assert.Equal([new TrainingSetVersion(1, 2_000)], manifest.Versions);
        Assert.Equal((s_cutoff, s_newSince, 0.5, 2_000L, 0.2, 3L), (manifest.Cutoff, manifest.NewSince!.Value, manifest.Mix!.Value, manifest.Rows!.Value, manifest.Holdout, manifest.Seed));
        Assert.Equal([(1_600L, 800L), (400L, 200L)], manifest.Files.Select(f => (f.Rows, f.NewRows)));
        foreach (var file in manifest.Files)
        {
            var bytes = await File.ReadAllBytesAsync(Path.Combine(_directory, file.File), Ct);
            Assert.Equal(Convert.ToHexStringLower(SHA256.HashData(bytes)), file.Sha256);
        }

        Assert.StartsWith($"mad export training-set {name} --out ", manifest.Command, StringComparison.Ordinal);
        Assert.Contains("--cutoff 2026-11-20T00:00:00.0000000Z", manifest.Command, StringComparison.Ordinal);
        Assert.DoesNotContain("Host=", manifest.Command, StringComparison.Ordinal);
        Assert.Contains("named.holdout.csv", output, StringComparison.Ordinal);
    }

    [Fact(Timeout = 120_000)]
    public async Task Parquet_reads_back_with_the_same_rows_in_the_same_order_as_csv()
    {
        var name = await CreateAsync();
        var csv = Path.Combine(_directory, "same.csv");
        var parquet = Path.Combine(_directory, "same.parquet");

        await ExportAsync(name, csv, mix: 0.5, rows: 3_000, seed: 5);
        var manifest = await ExportAsync(name, parquet, mix: 0.5, rows: 3_000, seed: 5, format: TrainingSetFormat.Parquet);
        var again = await ExportAsync(name, Path.Combine(_directory, "again.parquet"), mix: 0.5, rows: 3_000, seed: 5, format: TrainingSetFormat.Parquet);
        await using var stream = File.OpenRead(parquet);
        await using var reader = await ParquetReader.CreateAsync(stream, cancellationToken: Ct);
        var fields = reader.Schema.GetDataFields();
        var ids = new List<long>();
        var observed = new List<DateTime>();
        var lengths = new List<float>();
        for (var g = 0; g < reader.RowGroupCount; g++)
        {
            using var group = reader.OpenRowGroupReader(g);
            var n = (int)group.RowCount;
            var id = new long?[n];
            var at = new DateTime?[n];
            var length = new float?[n];
            await group.ReadAsync<long>(fields.Single(f => f.Name == "id"), id, cancellationToken: Ct);
            await group.ReadAsync<DateTime>(fields.Single(f => f.Name == "observed_at"), at, cancellationToken: Ct);
            await group.ReadAsync<float>(fields.Single(f => f.Name == "sepal_length"), length, cancellationToken: Ct);
            ids.AddRange(id.Select(v => v!.Value));
            observed.AddRange(at.Select(v => v!.Value));
            lengths.AddRange(length.Select(v => v!.Value));
        }

        var rows = ReadCsv(csv);
        Assert.Equal(["id", "sepal_length", "sepal_width", "petal_length", "petal_width", "label", "observed_at", "served_version", "served_arm", "served_outputs", "served_at", "served_device"],
            fields.Select(f => f.Name));
        Assert.Equal(rows.Select(r => r.Id), ids);
        Assert.Equal(rows.Select(r => r.ObservedAt.UtcDateTime), observed);
        Assert.Equal(rows.Select(r => r.SepalLength), lengths);
        Assert.Equal(1_500, observed.Count(o => o >= s_newSince.UtcDateTime));
        Assert.Equal(manifest.Files[0].Sha256, again.Files[0].Sha256);
        Assert.Equal(Convert.ToHexStringLower(SHA256.HashData(await File.ReadAllBytesAsync(parquet, Ct))), manifest.Files[0].Sha256);
    }

    [Fact(Timeout = 60_000)]
    public async Task Bad_options_and_a_table_without_outcomes_fail_with_a_message()
    {
        var (model, tables) = await BatchTables.ReadyModelAsync(Database.DataSource);
        var source = await BatchTables.CreateFlowersAsync(Database.DataSource, 5);
        var bare = Sql.UniqueName("bare");
        await BatchTables.CreateAsync(tables, bare, source, model);
        var out_ = Path.Combine(_directory, "bad.csv");

        var (noOutcomes, unbound) = await RunAsync("export", "training-set", bare, "--out", out_);
        var (badMix, mix) = await RunAsync("export", "training-set", bare, "--out", out_, "--new-since", "2026-11-01", "--mix", "1.5");
        var (mixAlone, alone) = await RunAsync("export", "training-set", bare, "--out", out_, "--mix", "0.5");
        var (early, before) = await RunAsync("export", "training-set", bare, "--out", out_, "--new-since", "2026-11-01", "--cutoff", "2026-10-01");

        Assert.Equal((int)ErrorCode.NotFound, noOutcomes);
        Assert.Contains("has no outcomes bound", unbound, StringComparison.Ordinal);
        Assert.Contains("mad.set_outcomes", unbound, StringComparison.Ordinal);
        Assert.Equal(((int)ErrorCode.InvalidArgument, (int)ErrorCode.InvalidArgument, (int)ErrorCode.InvalidArgument), (badMix, mixAlone, early));
        Assert.Contains("between 0 and 1", mix, StringComparison.Ordinal);
        Assert.Contains("--mix needs --new-since", alone, StringComparison.Ordinal);
        Assert.Contains("is before --new-since", before, StringComparison.Ordinal);
        Assert.Empty(Directory.GetFiles(_directory));

        await Database.DataSource.ExecuteAsync($"CREATE TABLE public.{bare}_events (id bigint, label text, observed_at timestamptz)");
        await Database.DataSource.ExecuteAsync($"SELECT mad.set_outcomes('{bare}', source => 'public.{bare}_events', key => '{{id}}', label => 'label', observed_at => 'observed_at')");
        var (noLabels, none) = await RunAsync("export", "training-set", bare, "--out", out_);
        Assert.Equal((int)ErrorCode.NotFound, noLabels);
        Assert.Contains("No labels yet", none, StringComparison.Ordinal);
        Assert.Empty(Directory.GetFiles(_directory));
    }

    /// <summary>A prediction table named &lt;name&gt; over public.&lt;name&gt;_flowers with outcomes in public.&lt;name&gt;_events.</summary>
    private async Task<string> CreateAsync()
    {
        var (model, tables) = await BatchTables.ReadyModelAsync(Database.DataSource);
        var name = Sql.UniqueName("train");
        var source = await BatchTables.CreateFlowersAsync(Database.DataSource, 12_000, $"{name}_flowers");
        await BatchTables.CreateAsync(tables, name, source, model);
        await Database.DataSource.ExecuteAsync($$"""
            CREATE TABLE public.{{name}}_events (id bigint, label text, observed_at timestamptz);
            INSERT INTO public.{{name}}_events
            SELECT g, (g % 3)::text, CASE WHEN g <= 6000 THEN timestamptz '2026-10-01 00:00+00' + (g % 20) * interval '1 day'
                                          WHEN g <= 11000 THEN timestamptz '2026-11-05 00:00+00'
                                          ELSE timestamptz '2026-12-01 00:00+00' END
            FROM generate_series(1, 12000) g;
            SELECT mad.set_outcomes('{{name}}', source => 'public.{{name}}_events', key => '{id}', label => 'label', observed_at => 'observed_at');
            INSERT INTO mad_history.{{name}} (key, version, arm, outputs, scored_at)
            SELECT g::text, 1, 'champion', jsonb_build_object('label', (g % 3)::text), timestamptz '2026-09-30 00:00+00' FROM generate_series(1, 12000) g;
            """);
        return name;
    }

    private Task<TrainingSetManifest> ExportAsync(string name, string out_, double? mix = null, long? rows = null, double holdout = 0, long seed = 1,
        TrainingSetFormat format = TrainingSetFormat.Csv) =>
        new PostgresTrainingSets(Database.DataSource).ExportAsync(new TrainingSetRequest
        {
            PredictionTable = name, Out = out_, Format = format, NewSince = mix is null ? null : s_newSince, Mix = mix, Rows = rows, Holdout = holdout, Seed = seed, Cutoff = s_cutoff,
        }, cancellationToken: Ct);

    /// <summary>The CSV's id, sepal_length and observed_at, read by position (only served_outputs, after them, is quoted).</summary>
    internal static List<(long Id, float SepalLength, DateTimeOffset ObservedAt)> ReadCsv(string path)
    {
        var lines = File.ReadAllLines(path);
        Assert.Equal("id,sepal_length,sepal_width,petal_length,petal_width,label,observed_at,served_version,served_arm,served_outputs,served_at,served_device", lines[0]);
        return [.. lines.Skip(1).Select(l => l.Split(',')).Select(f => (long.Parse(f[0], CultureInfo.InvariantCulture), float.Parse(f[1], CultureInfo.InvariantCulture),
            DateTimeOffset.Parse(f[6], CultureInfo.InvariantCulture)))];
    }
}

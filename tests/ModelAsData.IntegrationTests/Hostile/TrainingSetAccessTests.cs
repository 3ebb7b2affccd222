using ModelAsData.Core.Export;
using ModelAsData.IntegrationTests.Outcomes;
using ModelAsData.Postgres.Export;

namespace ModelAsData.IntegrationTests.Hostile;

/// <summary>
/// The export reads the outcome source and the features on the caller's own connection: a reader granted the
/// predictions but not the labels, or not one feature column, gets PostgreSQL's 42501 and no file. Typed as the
/// attacker would, through the CLI and the library.
/// </summary>
public sealed class TrainingSetAccessTests(PostgresDatabase database) : MadCliTests(database), IDisposable
{
    private readonly string _directory = Directory.CreateTempSubdirectory("mad-export-hostile-").FullName;

    public void Dispose() => Directory.Delete(_directory, recursive: true);

    [Fact(Timeout = 90_000)]
    public async Task A_reader_who_may_not_select_the_labels_or_a_feature_column_cannot_export_them()
    {
        var (name, source, outcomes, _) = await OutcomeTables.CreateAsync(Database.DataSource);
        await OutcomeTables.ServeAsync(Database.DataSource, name, $"('1', 1, 'champion', '{OutcomeTables.Binary(0.9)}', '2026-11-02 10:00+00')");
        await Database.DataSource.ExecuteAsync($"INSERT INTO public.{outcomes} VALUES (1, '1', '2026-11-02 12:00+00'), (2, '0', '2026-11-03 12:00+00')");
        await using var roles = new HostileRoles(Database);
        var (reader, session) = await roles.LoginAsync("exporter", "IN ROLE mad_user");
        await Database.DataSource.ExecuteAsync($"GRANT SELECT ON mad_out.{name} TO {reader}; GRANT USAGE ON SCHEMA public TO {reader}; GRANT SELECT ON public.{source} TO {reader}");
        var out_ = Path.Combine(_directory, "stolen.csv");
        var request = new TrainingSetRequest { PredictionTable = name, Out = out_, Holdout = 0.5 };

        var labels = await Assert.ThrowsAsync<PostgresException>(() => new PostgresTrainingSets(session).ExportAsync(request, cancellationToken: Ct));
        var (exit, output) = await RunWithDbAsync(session.ConnectionString, "export", "training-set", name, "--out", out_);

        Assert.Equal(PostgresErrorCodes.InsufficientPrivilege, labels.SqlState);
        Assert.Contains(outcomes, labels.MessageText, StringComparison.Ordinal);
        Assert.True(exit == (int)Core.ErrorCode.PermissionDenied, $"exit {exit}: {output}");
        Assert.Contains("permission denied", output, StringComparison.Ordinal);
        Assert.Empty(Directory.GetFiles(_directory));

        // Granted the labels but only some of the features' columns: refused again, on the missing column.
        await Database.DataSource.ExecuteAsync($"""
            GRANT SELECT ON public.{outcomes} TO {reader};
            REVOKE SELECT ON public.{source} FROM {reader};
            GRANT SELECT (id, sepal_length, sepal_width, petal_length) ON public.{source} TO {reader};
            """);
        var feature = await Assert.ThrowsAsync<PostgresException>(() => new PostgresTrainingSets(session).ExportAsync(request, cancellationToken: Ct));
        Assert.Equal(PostgresErrorCodes.InsufficientPrivilege, feature.SqlState);
        Assert.Contains(source, feature.MessageText, StringComparison.Ordinal);
        Assert.Empty(Directory.GetFiles(_directory));

        // With every column granted, row security on the outcome source still decides which labels it sees.
        await Database.DataSource.ExecuteAsync($"""
            GRANT SELECT ON public.{source} TO {reader};
            ALTER TABLE public.{outcomes} ENABLE ROW LEVEL SECURITY;
            CREATE POLICY only_key_2 ON public.{outcomes} FOR SELECT TO {reader} USING (id = 2);
            """);
        var manifest = await new PostgresTrainingSets(session).ExportAsync(request with { Holdout = 0 }, cancellationToken: Ct);
        Assert.Equal(1, manifest.Files.Single().Rows);
        Assert.StartsWith("2,", File.ReadAllLines(out_)[1], StringComparison.Ordinal);
    }
}

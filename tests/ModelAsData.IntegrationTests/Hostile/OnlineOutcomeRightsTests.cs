using ModelAsData.Core.Export;
using ModelAsData.IntegrationTests.Requests;
using ModelAsData.Postgres.Export;

namespace ModelAsData.IntegrationTests.Hostile;

/// <summary>
/// Who may bind outcomes to a model's online traffic and read it (051): mad_admin only, as online drift (026_2); a
/// mad_user sees the key of their own requests and nobody else's. Typed as an attacker with mad_user would.
/// </summary>
public sealed class OnlineOutcomeRightsTests(PostgresDatabase database) : OnlineRequestTests(database), IDisposable
{
    private readonly string _directory = Directory.CreateTempSubdirectory("mad-online-rights-").FullName;

    public void Dispose() => Directory.Delete(_directory, recursive: true);

    [Fact(Timeout = 180_000)]
    public async Task A_mad_user_can_neither_bind_outcomes_to_a_models_online_traffic_nor_read_others_keys_or_graded_predictions()
    {
        var model = await PushIrisAsync();
        var events = Sql.UniqueName("events");
        await Database.DataSource.ExecuteAsync($"""
            SELECT mad.deploy('{model}', 'production', 1);
            CREATE TABLE public.{events} (customer_id text, label text, observed_at timestamptz);
            GRANT SELECT ON public.{events} TO mad_user;
            SELECT mad.set_outcomes('online:{model}', source => 'public.{events}', key => '{"{customer_id}"}', label => 'label', observed_at => 'observed_at');
            """);
        await using var roles = new HostileRoles(Database);
        var (_, alice) = await roles.LoginAsync("alice", "IN ROLE mad_user");
        var (mallory, intruder) = await roles.LoginAsync("mallory", "IN ROLE mad_user");
        await using var sidecar = await StartSidecarAsync();

        await intruder.ExecuteAsync("CALL mad.predict(@model, @features::jsonb, NULL, key => 'mallory-1')", new { model, features = RequestSupport.Setosa });
        await alice.ExecuteAsync("CALL mad.predict(@model, @features::jsonb, NULL, key => 'alice-secret')", new { model, features = RequestSupport.Virginica });
        await Database.DataSource.ExecuteAsync($"INSERT INTO public.{events} VALUES ('alice-secret', '2', clock_timestamp())");

        // Her own key she sees; Alice's, not.
        Assert.Equal(["mallory-1"], await intruder.QueryAsync<string>("SELECT key FROM mad.requests WHERE key IS NOT NULL"));
        Assert.Equal(["alice-secret"], await alice.QueryAsync<string>("SELECT key FROM mad.requests WHERE key IS NOT NULL"));
        await AssertDeniedAsync(intruder, "SELECT key, outputs FROM mad.prediction_log");
        await AssertDeniedAsync(intruder, "SELECT count(*) FROM mad.prediction_log WHERE key = 'alice-secret'");

        // Rebinding the traffic to a source she controls (so that her labels grade it), or binding it at all.
        await Database.DataSource.ExecuteAsync(
            $"CREATE TABLE public.{mallory}_labels (customer_id text, label text, observed_at timestamptz); GRANT SELECT ON public.{mallory}_labels TO {mallory}");
        await AssertDeniedAsync(intruder,
            $"SELECT mad.set_outcomes('online:{model}', source => 'public.{mallory}_labels', key => '{{customer_id}}', label => 'label', observed_at => 'observed_at')");
        await AssertDeniedAsync(intruder,
            $"SELECT mad.set_online_outcomes('online:{model}', 'public.{mallory}_labels', '{{customer_id}}', 'label', 'observed_at')");
        Assert.Equal(events, await Database.DataSource.ScalarAsync<string>(
            "SELECT source::text FROM mad.outcomes WHERE prediction_table = @table", new { table = $"online:{model}" }));
        await AssertDeniedAsync(intruder, "SET ROLE mad_admin");

        // Reading the graded predictions (every caller's keys and answers), by each door to them.
        await AssertDeniedAsync(intruder, $"SELECT * FROM mad.performance('online:{model}')");
        await AssertDeniedAsync(intruder, $"SELECT * FROM mad.served_predictions('online:{model}')");
        await AssertDeniedAsync(intruder, $"SELECT * FROM mad.online_served_predictions('online:{model}')");
        await AssertDeniedAsync(intruder, $"SELECT * FROM mad.export_served('online:{model}')"); // 055_1: the export's door to the same rows
        await AssertDeniedAsync(intruder, $"SELECT * FROM mad.online_key_features('{model}')");
        await AssertDeniedAsync(intruder, $"SELECT * FROM mad.outcome_metrics('online:{model}')");
        var out_ = Path.Combine(_directory, "stolen.csv");
        var export = await Assert.ThrowsAnyAsync<Exception>(() => new PostgresTrainingSets(intruder).ExportAsync(new TrainingSetRequest
        {
            PredictionTable = $"online:{model}", Out = out_, Format = TrainingSetFormat.Csv, Seed = 1, Cutoff = DateTimeOffset.UtcNow.AddHours(1),
        }, cancellationToken: Ct));
        Assert.Contains("permission denied", export.Message, StringComparison.Ordinal);
        Assert.False(File.Exists(out_));
        // mad.compare leaves the online traffic out for her rather than failing (her tables' rows would be lost).
        Assert.Empty(await intruder.QueryAsync<string>($"SELECT prediction_table FROM mad.compare('{model}', 'production')"));

        // mad_admin reads it: both keyed requests, Alice's graded.
        await Eventually.WaitForAsync(
            () => Database.DataSource.ScalarAsync<long>("SELECT count(*) FROM mad.served_predictions(@table)", new { table = $"online:{model}" }),
            n => n == 2, "both keyed requests in the log");
        var labeled = await Database.DataSource.ScalarAsync<long>(
            "SELECT n_labeled FROM mad.performance(@table) WHERE metric = 'accuracy'", new { table = $"online:{model}" });
        Assert.Equal(1, labeled);
    }

    private static async Task AssertDeniedAsync(NpgsqlDataSource dataSource, string sql)
    {
        var e = await Assert.ThrowsAsync<PostgresException>(() => dataSource.ExecuteAsync(sql));
        Assert.Equal("42501", e.SqlState);
    }
}

using ModelAsData.IntegrationTests.Batch;
using ModelAsData.IntegrationTests.Postgres;
using ModelAsData.Postgres.Jobs;

namespace ModelAsData.IntegrationTests.Deployments;

/// <summary>
/// uint64 outputs are labels to the deployment report (059, CanaryAgreementSums): with uint64_columns.onnx, whose only
/// single-valued outputs are uint64, the canary's sampled keys and the shadow's rows compare them digit for digit, so
/// a canary or shadow with the champion's bytes agrees fully (share_equal 1, not NULL as when only integer and text
/// outputs counted as labels).
/// </summary>
public sealed class Uint64AgreementTests(PostgresDatabase database) : DatabaseTests(database)
{
    [Fact(Timeout = 120_000)]
    public async Task A_canary_and_a_shadow_of_the_champions_bytes_agree_fully_on_uint64_labels()
    {
        await using var sidecar = await RunningSidecar.StartAsync(Database.ConnectionString);
        var registry = new PostgresModelRegistry(Database.DataSource);
        var model = Sql.UniqueName("uint64_columns");
        var file = Path.Combine(AppContext.BaseDirectory, "TestData", "uint64_columns.onnx");
        await registry.PushReadyAsync(model, file);
        await registry.PushReadyAsync(model, file);
        await registry.PushReadyAsync(model, file);
        var source = Sql.UniqueName("counters");
        await Database.DataSource.ExecuteAsync($"""
            CREATE TABLE public.{source} (id bigint PRIMARY KEY, x numeric(20,0)[]);
            INSERT INTO public.{source} SELECT i, ARRAY[18446744073709551615 - i, 9007199254740993 + i, i, 0] FROM generate_series(1, 400) i;
            UPDATE mad.settings SET value = '100' WHERE name = 'canary_agreement_percent';
            SELECT mad.deploy(@model, 'production', 1);
            SELECT mad.deploy_canary(@model, 'production', 2, percent => 50);
            SELECT mad.deploy_shadow(@model, 'production', 3);
            """, new { model });
        try
        {
            var name = Sql.UniqueName("counter_scores");
            await Database.DataSource.ExecuteAsync($"SELECT mad.create_prediction_table('{name}', 'public.{source}', '{{id}}', '{model}@production')");

            await new PostgresPredictionTables(registry, TimeSpan.FromMilliseconds(50)).RefreshAsync(name, cancellationToken: Ct);

            var arms = (await Database.DataSource.QueryAsync<(string Arm, double? Equal, long? Compared)>(
                "SELECT arm, share_equal, rows_compared FROM mad.deployment_report WHERE model = @model AND arm IN ('canary', 'shadow') ORDER BY arm", new { model })).ToList();
            Assert.Equal(["canary", "shadow"], arms.Select(a => a.Arm));
            Assert.All(arms, a => Assert.Equal(1.0, a.Equal));
            Assert.InRange(arms[0].Compared!.Value, 150, 250); // every canary key (~200 of 400) compared at 100 %
            Assert.Equal(400, arms[1].Compared);
        }
        finally
        {
            await Database.DataSource.ExecuteAsync("UPDATE mad.settings SET value = '10' WHERE name = 'canary_agreement_percent'");
        }
    }
}

using ModelAsData.IntegrationTests.Batch;
using ModelAsData.Postgres.Jobs;
using Npgsql;

namespace ModelAsData.IntegrationTests.Outcomes;

/// <summary>A prediction table with outcomes bound (public.&lt;outcomes&gt;: id, label, observed_at), for the outcome tests.</summary>
internal static class OutcomeTables
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    public static async Task<(string Name, string Source, string Outcomes, string Model)> CreateAsync(NpgsqlDataSource dataSource, string labelType = "text",
        (string Model, PostgresPredictionTables Tables)? served = null)
    {
        var (model, tables) = served ?? await BatchTables.ReadyModelAsync(dataSource);
        var source = await BatchTables.CreateFlowersAsync(dataSource, 10);
        var name = Sql.UniqueName("scores");
        var outcomes = Sql.UniqueName("events");
        await tables.CreateAsync(new PredictionTableSpec(name, source, ["id"], model, Core.FeatureMapping.Parse(BatchTables.IrisFeatures)), Ct);
        await dataSource.ExecuteAsync($"CREATE TABLE public.{outcomes} (id bigint, label {labelType}, observed_at timestamptz)");
        await dataSource.ExecuteAsync(
            $"SELECT mad.set_outcomes('{name}', source => 'public.{outcomes}', key => '{{id}}', label => 'label', observed_at => 'observed_at')");
        return (name, source, outcomes, model);
    }

    /// <summary>Served predictions written straight into the history: (key, version, arm, outputs json, scored_at).</summary>
    public static Task ServeAsync(NpgsqlDataSource dataSource, string name, string valuesSql) =>
        dataSource.ExecuteAsync($"INSERT INTO mad_history.{name} (key, version, arm, outputs, scored_at) VALUES {valuesSql}");

    /// <summary>A binary classifier's outputs with probability p of class 1 (label 1 when p ≥ 0.5).</summary>
    public static string Binary(double p) => FormattableString.Invariant(
        $$"""{"label": "{{(p >= 0.5 ? 1 : 0)}}", "probability_0": {{1 - p}}, "probability_1": {{p}}}""");
}

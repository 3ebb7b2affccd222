using System.Globalization;
using System.Text;
using ModelAsData.IntegrationTests.Batch;
using ModelAsData.IntegrationTests.Hostile;
using ModelAsData.IntegrationTests.Requests;
using ModelAsData.Sidecar;

namespace ModelAsData.IntegrationTests.Monitoring;

/// <summary>
/// Online requests (CALL mad.predict, mad.predict_async, HTTP) are counted by the prediction log writer under
/// 'online:&lt;model&gt;' (026_2): requests whose features are shifted from the baseline show drift in
/// mad.drift('online:&lt;model&gt;'), requests drawn from the baseline's own rows do not; only mad_admin may ask.
/// </summary>
public sealed class OnlineDriftTests(PostgresDatabase database) : DatabaseTests(database)
{
    private const int Calls = 150;
    private const int Asks = 50;
    private const int HttpRows = 100;

    [Fact(Timeout = 180_000)]
    public async Task Requests_with_shifted_features_show_drift_in_the_models_online_counts()
    {
        var (model, drift) = await OnlineDriftAsync(shift: 1.5);

        var psi = drift.Where(r => r.Kind == "input" && r.Metric == "psi").ToList();
        Assert.Equal(4, psi.Count);
        Assert.All(psi, r => Assert.Equal((1, Calls + Asks + HttpRows), (r.Version, r.NCurrent)));
        Assert.True(psi.Single(r => r.Column == "sepal_length").Drifted, string.Join("; ", psi.Select(r => $"{r.Column} {DriftRows.Describe(r.Value)}")));
        Assert.DoesNotContain(psi, r => r.Column != "sepal_length" && r.Drifted); // only sepal_length was shifted

        // Only mad_admin reads a model's online drift: no table owner stands for its callers.
        await using var roles = new HostileRoles(Database);
        var (_, attacker) = await roles.LoginAsync("attacker", "IN ROLE mad_user");
        var refused = await attacker.FailsAsync("SELECT * FROM mad.drift(@name)", new { name = "online:" + model });
        Assert.Equal(PostgresErrorCodes.InsufficientPrivilege, refused.SqlState);
        var histograms = await attacker.FailsAsync("SELECT * FROM mad.drift_histograms(@name)", new { name = "online:" + model });
        Assert.Equal(PostgresErrorCodes.InsufficientPrivilege, histograms.SqlState);
        var counts = await attacker.FailsAsync("SELECT * FROM mad.profile_counts");
        Assert.Equal(PostgresErrorCodes.InsufficientPrivilege, counts.SqlState);
        var missing = await Database.DataSource.FailsAsync("SELECT * FROM mad.drift('online:no_such_model')");
        Assert.Contains("no_such_model", missing.MessageText, StringComparison.Ordinal);
    }

    [Fact(Timeout = 180_000)]
    public async Task Requests_drawn_from_the_baselines_rows_show_no_drift()
    {
        var (_, drift) = await OnlineDriftAsync(shift: 0);

        var inputs = drift.Where(r => r.Kind == "input").ToList();
        Assert.Equal(4, inputs.Select(r => r.Column).Distinct().Count());
        Assert.All(inputs, r => Assert.Equal(Calls + Asks + HttpRows, r.NCurrent));
        Assert.All(inputs, r => Assert.False(r.Drifted, $"{r.Column} {r.Metric} = {DriftRows.Describe(r.Value)} > {DriftRows.Describe(r.Threshold)}"));
    }

    /// <summary>
    /// A model bound to a prediction table (its mapping names the columns), a baseline of 1,000 rows, then requests
    /// made of the baseline's first rows shifted by <paramref name="shift"/> on sepal_length: CALLs, async requests and
    /// one HTTP request of many rows. Waits until the log writer has counted them all; returns mad.drift of the model.
    /// </summary>
    private async Task<(string Model, IReadOnlyList<Row> Drift)> OnlineDriftAsync(double shift)
    {
        var (model, tables) = await BatchTables.ReadyModelAsync(Database);
        var (training, name) = (Sql.UniqueName("training"), Sql.UniqueName("scores"));
        await DriftRows.CreatePostgresAsync(Database.DataSource, training, 1_000, seed: 31);
        await BatchTables.CreateAsync(tables, name, training, model);
        await Database.DataSource.ExecuteAsync($"SELECT mad.set_baseline(@model, 1, 'public.{training}')", new { model });
        await using var roles = new HostileRoles(Database);
        var token = await HttpDoorSupport.TokenAsync(Database, await roles.GroupAsync("scorer", "IN ROLE mad_user"));
        await using var sidecar = await HttpDoorSupport.StartAsync(Database);
        using var http = HttpDoorSupport.Client(sidecar, token);

        var rows = DriftRows.Make(Calls + Asks + HttpRows, seed: 31, shift: 0)
            .Select(r => new[] { r.SepalLength + shift, r.SepalWidth, r.PetalLength, r.PetalWidth }).ToArray();
        static string Features(double[] row) => "{\"float_input\": [" + string.Join(", ", row.Select(v => v.ToString("R", CultureInfo.InvariantCulture))) + "]}";
        await Parallel.ForEachAsync(rows.Take(Calls), new ParallelOptions { MaxDegreeOfParallelism = 4, CancellationToken = Ct }, async (row, ct) =>
            await RequestSupport.CallAsync(Database.DataSource, model, Features(row)));
        foreach (var row in rows.Skip(Calls).Take(Asks))
        {
            await Database.DataSource.ScalarAsync<long>("SELECT mad.predict_async(@model, @features::jsonb)", new { model, features = Features(row) });
        }

        var data = string.Join(", ", rows.Skip(Calls + Asks).SelectMany(r => r).Select(v => v.ToString("R", CultureInfo.InvariantCulture)));
        var body = $$"""{"inputs": [{"name": "float_input", "shape": [{{HttpRows}}, 4], "datatype": "FP32", "data": [{{data}}]}]}""";
        using (var answer = await http.PostAsync($"/v2/models/{model}/infer", new StringContent(body, Encoding.UTF8, "application/json"), Ct))
        {
            Assert.True(answer.IsSuccessStatusCode, await answer.Content.ReadAsStringAsync(Ct));
        }

        var deadline = DateTime.UtcNow.AddSeconds(60);
        long counted;
        while ((counted = await Database.DataSource.ScalarAsync<long>(
                   "SELECT coalesce(sum(count), 0) FROM mad.profile_counts WHERE prediction_table = @table AND kind = 'input' AND column_name = 'sepal_length'",
                   new { table = "online:" + model })) < rows.Length && DateTime.UtcNow < deadline)
        {
            await Task.Delay(100, Ct);
        }

        Assert.Equal(rows.Length, counted);
        return (model, await Database.DataSource.QueryAsync<Row>(
            "SELECT version, \"column\", kind, metric, value, threshold, drifted, n_current AS ncurrent FROM mad.drift(@name)", new { name = "online:" + model }));
    }

    private sealed record Row(int Version, string Column, string Kind, string Metric, double? Value, double? Threshold, bool Drifted, long NCurrent);
}

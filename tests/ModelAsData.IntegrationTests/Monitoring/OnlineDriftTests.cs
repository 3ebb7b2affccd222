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

    [Fact(Timeout = 180_000)]
    public async Task Online_requests_of_a_version_without_a_baseline_learn_its_first_window()
    {
        var (model, tables) = await BatchTables.ReadyModelAsync(Database);
        var training = Sql.UniqueName("training");
        await DriftRows.CreatePostgresAsync(Database.DataSource, training, 10, seed: 32);
        await BatchTables.CreateAsync(tables, Sql.UniqueName("scores"), training, model); // maps the inputs; never refreshed
        await using var sidecar = await HttpDoorSupport.StartAsync(Database);

        // 044_2: the writer keeps the first 100 requests' values (first_window_rows), stores the reference fitted on
        // them, then counts every request into it.
        const int requests = 250;
        var rows = DriftRows.Make(requests, seed: 32);
        await Parallel.ForEachAsync(rows, new ParallelOptions { MaxDegreeOfParallelism = 4, CancellationToken = Ct }, async (r, ct) =>
            await RequestSupport.CallAsync(Database.DataSource, model, string.Create(CultureInfo.InvariantCulture,
                $"{{\"float_input\": [{r.SepalLength}, {r.SepalWidth}, {r.PetalLength}, {r.PetalWidth}]}}")));
        await Eventually.WaitForAsync(() => Database.DataSource.ScalarAsync<long>(
                "SELECT coalesce(sum(count), 0) FROM mad.profile_counts WHERE prediction_table = @table AND kind = 'input' AND column_name = 'sepal_length'",
                new { table = "online:" + model }),
            n => n == requests, "every request to be counted", TimeSpan.FromSeconds(60));

        var reference = await Database.DataSource.QueryAsync<(string Kind, string Column, string Type, string Reference, string Source, long Rows)>("""
            SELECT kind, column_name, type, reference, source, (SELECT sum(x) FROM unnest(counts) x)::bigint + null_count
            FROM mad.baselines WHERE model = @model AND version = 1 ORDER BY kind, column_name
            """, new { model });
        TestContext.Current.TestOutputHelper?.WriteLine(string.Join("; ", reference));
        var inputs = reference.Where(r => r.Kind == "input").ToList();
        Assert.Equal(["petal_length", "petal_width", "sepal_length", "sepal_width"], inputs.Select(r => r.Column));
        Assert.All(reference, r => Assert.Equal(("first_window", "online:" + model), (r.Reference, r.Source)));
        Assert.All(inputs, r => Assert.Equal("numeric", r.Type));
        var learned = inputs[0].Rows;
        Assert.InRange(learned, 100, requests); // whole log batches, until at least 100 requests
        Assert.All(reference, r => Assert.Equal(learned, r.Rows));
        Assert.Contains(reference, r => r.Kind == "output"); // the answers are learned too

        // mad.drift compares the requests with that first window and says so. (Which requests the window holds
        // depends on the order the parallel calls are logged in, so its values are not asserted.)
        var psi = await Database.DataSource.QueryAsync<(int Version, string Column, long NCurrent, long NBaseline, string Reference)>(
            "SELECT version, \"column\", n_current, n_baseline, reference FROM mad.drift(@name) WHERE kind = 'input' AND metric = 'psi' ORDER BY 2",
            new { name = "online:" + model });
        Assert.Equal(4, psi.Count);
        Assert.All(psi, r => Assert.Equal((1, (long)requests, learned, "first_window"), (r.Version, r.NCurrent, r.NBaseline, r.Reference)));
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

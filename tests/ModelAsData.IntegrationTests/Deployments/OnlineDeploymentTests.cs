using System.Text.Json.Nodes;
using ModelAsData.Core.Deployments;

namespace ModelAsData.IntegrationTests.Deployments;

/// <summary>CALL mad.predict and mad.predict_async honour the deployment: sticky by key, a random draw without one.</summary>
public sealed class OnlineDeploymentTests(PostgresDatabase database) : Requests.OnlineRequestTests(database)
{
    private const string Features = """{"float_input": [5.9, 3.0, 5.1, 1.8]}""";

    [Fact(Timeout = 120_000)]
    public async Task Call_with_a_key_is_served_by_its_buckets_version_and_the_request_and_log_record_the_arm()
    {
        var model = await PostgresDeploymentTests.ThreeReadyVersionsAsync(new PostgresModelRegistry(Database.DataSource));
        await Database.DataSource.ExecuteAsync("SELECT mad.deploy(@model, 'production', 1)", new { model });
        var seed = await Database.DataSource.ScalarAsync<long>("SELECT mad.deploy_canary(@model, 'production', 2, percent => 50)", new { model });
        await using var sidecar = await StartSidecarAsync();

        var expected = new Dictionary<string, int>();
        for (var k = 1; k <= 24; k++)
        {
            var key = k.ToString(System.Globalization.CultureInfo.InvariantCulture);
            var answer = JsonNode.Parse(await Database.DataSource.ScalarAsync<string>(
                "CALL mad.predict(@model, @features::jsonb, NULL, key => @key)", new { model, features = Features, key }))!;
            expected[key] = StickyBucket.InCanary(seed, key, 50) ? 2 : 1;
            Assert.Equal(expected[key], answer["version"]!.GetValue<int>());
        }

        Assert.Contains(1, expected.Values);
        Assert.Contains(2, expected.Values);
        var requests = await Database.DataSource.QueryAsync<(int Version, string Arm)>("SELECT version, arm FROM mad.requests WHERE model = @model ORDER BY id", new { model });
        Assert.Equal(expected.Values.Select(v => (v, v == 2 ? Arms.Canary : Arms.Champion)), requests);
        var logged = await Eventually.WaitForAsync(
            () => Database.DataSource.QueryAsync<(int Version, string Arm)>("SELECT l.version, l.arm FROM mad.prediction_log l WHERE l.model = @model ORDER BY l.request_id", new { model }),
            rows => rows.Count == 24, "the prediction log");
        Assert.Equal(requests, logged);

        // predict_async routes the same way; the request is routed before it commits.
        var id = await Database.DataSource.ScalarAsync<long>("SELECT mad.predict_async(@model, @features::jsonb, key => '7')", new { model, features = Features });
        Assert.Equal(expected["7"], await Database.DataSource.ScalarAsync<int>("SELECT version FROM mad.requests WHERE id = @id", new { id }));
    }

    [Fact(Timeout = 120_000)]
    public async Task Without_a_key_each_call_draws_at_the_percent_and_a_promote_serves_the_canary_to_all()
    {
        var model = await PostgresDeploymentTests.ThreeReadyVersionsAsync(new PostgresModelRegistry(Database.DataSource));
        await Database.DataSource.ExecuteAsync("SELECT mad.deploy(@model, 'production', 1); SELECT mad.deploy_canary(@model, 'production', 2, percent => 100)", new { model });
        await using var sidecar = await StartSidecarAsync();

        for (var i = 0; i < 5; i++)
        {
            var answer = JsonNode.Parse(await Database.DataSource.ScalarAsync<string>("CALL mad.predict(@model, @features::jsonb, NULL)", new { model, features = Features }))!;
            Assert.Equal(2, answer["version"]!.GetValue<int>()); // 100 %: every draw is the canary
        }

        await Database.DataSource.ExecuteAsync("SELECT mad.abort_deployment(@model, 'production')", new { model });
        var after = JsonNode.Parse(await Database.DataSource.ScalarAsync<string>("CALL mad.predict(@model, @features::jsonb, NULL, key => '1')", new { model, features = Features }))!;
        Assert.Equal(1, after["version"]!.GetValue<int>());
        // A reference to a version is never routed.
        var pinned = JsonNode.Parse(await Database.DataSource.ScalarAsync<string>("CALL mad.predict(@model, @features::jsonb, NULL, key => '1')", new { model = model + "@3", features = Features }))!;
        Assert.Equal(3, pinned["version"]!.GetValue<int>());
    }

    [Fact(Timeout = 120_000)]
    public async Task Without_a_key_the_draw_is_at_the_canary_and_shadow_percent_and_with_one_always_the_same()
    {
        // mad.submit_request routes a request in the caller's transaction (057_2), so no sidecar is needed to see the draws.
        var model = await PostgresDeploymentTests.ThreeReadyVersionsAsync(new PostgresModelRegistry(Database.DataSource));
        await Database.DataSource.ExecuteAsync("""
            SELECT mad.deploy(@model, 'production', 1);
            SELECT mad.deploy_canary(@model, 'production', 2, percent => 30);
            SELECT mad.deploy_shadow(@model, 'production', 3, percent => 60);
            """, new { model });
        try
        {
            await Database.DataSource.ExecuteAsync("SELECT mad.predict_async(@model, @features::jsonb) FROM generate_series(1, 2000)", new { model, features = Features });
            var (canary, shadow) = (await Database.DataSource.QueryAsync<(long, long)>(
                "SELECT count(*) FILTER (WHERE arm = 'canary' AND version = 2), count(shadow_version) FROM mad.requests WHERE model = @model", new { model })).Single();
            Assert.InRange(canary, 600 - 3 * 20.5, 600 + 3 * 20.5);    // σ = √(2000 · 0.3 · 0.7)
            Assert.InRange(shadow, 1200 - 3 * 21.9, 1200 + 3 * 21.9);  // σ = √(2000 · 0.6 · 0.4)

            // With a key: every request of the key gets its bucket's version, however often it asks.
            var deployed = await Database.DataSource.ScalarAsync<long>("SELECT seed FROM mad.deployments WHERE model = @model", new { model });
            var ids = (await Database.DataSource.QueryAsync<long>("SELECT mad.predict_async(@model, @features::jsonb, key => '4242') FROM generate_series(1, 50)",
                new { model, features = Features })).ToArray();
            Assert.Equal(50, ids.Distinct().Count());
            var arms = (await Database.DataSource.QueryAsync<string>("SELECT DISTINCT arm FROM mad.requests WHERE id = ANY (@ids)", new { ids })).ToList();
            Assert.Equal([StickyBucket.InCanary(deployed, "4242", 30) ? Arms.Canary : Arms.Champion], arms);
        }
        finally
        {
            // No sidecar will answer them: they must not wait for the other tests' sidecars.
            await Database.DataSource.ExecuteAsync("DELETE FROM mad.requests WHERE model = @model", new { model });
        }
    }

    [Fact(Timeout = 180_000)]
    public async Task Http_infer_without_a_key_draws_at_the_canary_percent()
    {
        var model = await PostgresDeploymentTests.ThreeReadyVersionsAsync(new PostgresModelRegistry(Database.DataSource));
        await Database.DataSource.ExecuteAsync("SELECT mad.deploy(@model, 'production', 1); SELECT mad.deploy_canary(@model, 'production', 2, percent => 50)", new { model });
        await using var roles = new Hostile.HostileRoles(Database);
        var token = await Requests.HttpDoorSupport.TokenAsync(Database, await roles.GroupAsync("drawer", "IN ROLE mad_user"));
        await using var sidecar = await StartSidecarAsync($"127.0.0.1:{Requests.RequestSupport.FreePort()}");
        using var http = Requests.HttpDoorSupport.Client(sidecar, token);

        const int Calls = 200;
        var canary = 0;
        for (var i = 0; i < Calls; i++)
        {
            var request = new JsonObject
            {
                ["inputs"] = new JsonArray(new JsonObject
                {
                    ["name"] = "float_input", ["shape"] = new JsonArray(1, 4), ["datatype"] = "FP32", ["data"] = new JsonArray(5.9, 3.0, 5.1, 1.8),
                }),
            };
            using var infer = await System.Net.Http.Json.HttpClientJsonExtensions.PostAsJsonAsync(http, $"/v2/models/{model}/infer", request, Ct);
            var answer = (await System.Net.Http.Json.HttpContentJsonExtensions.ReadFromJsonAsync<JsonObject>(infer.Content, Ct))!;
            canary += answer["model_version"]!.GetValue<string>() == "2" ? 1 : 0;
        }

        Assert.InRange(canary, Calls / 2 - 3 * 7.08, Calls / 2 + 3 * 7.08); // σ = √(200 · 0.5 · 0.5)
        var logged = await Eventually.WaitForAsync(
            () => Database.DataSource.QueryAsync<string>("SELECT arm FROM mad.prediction_log WHERE model = @model AND door = 'http'", new { model }),
            rows => rows.Count == Calls, "the prediction log");
        Assert.Equal(canary, logged.Count(a => a == Arms.Canary));
    }

    [Fact(Timeout = 120_000)]
    public async Task Http_infer_with_parameters_key_is_served_by_its_buckets_version_and_logged_with_its_arm()
    {
        var model = await PostgresDeploymentTests.ThreeReadyVersionsAsync(new PostgresModelRegistry(Database.DataSource));
        await Database.DataSource.ExecuteAsync("SELECT mad.deploy(@model, 'production', 1)", new { model });
        var seed = await Database.DataSource.ScalarAsync<long>("SELECT mad.deploy_canary(@model, 'production', 2, percent => 50)", new { model });
        await using var roles = new Hostile.HostileRoles(Database);
        var token = await Requests.HttpDoorSupport.TokenAsync(Database, await roles.GroupAsync("scorer", "IN ROLE mad_user"));
        await using var sidecar = await StartSidecarAsync($"127.0.0.1:{Requests.RequestSupport.FreePort()}");
        using var http = Requests.HttpDoorSupport.Client(sidecar, token);

        var expected = new List<(int, string)>();
        for (var k = 1; k <= 12; k++)
        {
            var request = new JsonObject
            {
                ["parameters"] = new JsonObject { ["key"] = k },
                ["inputs"] = new JsonArray(new JsonObject
                {
                    ["name"] = "float_input", ["shape"] = new JsonArray(1, 4), ["datatype"] = "FP32", ["data"] = new JsonArray(5.9, 3.0, 5.1, 1.8),
                }),
            };
            using var infer = await System.Net.Http.Json.HttpClientJsonExtensions.PostAsJsonAsync(http, $"/v2/models/{model}/infer", request, Ct);
            var answer = (await System.Net.Http.Json.HttpContentJsonExtensions.ReadFromJsonAsync<JsonObject>(infer.Content, Ct))!;
            var canary = StickyBucket.InCanary(seed, StickyBucket.KeyText(k), 50);
            Assert.Equal(canary ? "2" : "1", answer["model_version"]!.GetValue<string>());
            expected.Add((canary ? 2 : 1, canary ? Arms.Canary : Arms.Champion));
        }

        Assert.Contains((2, Arms.Canary), expected);
        var logged = await Eventually.WaitForAsync(
            () => Database.DataSource.QueryAsync<(int Version, string Arm)>("SELECT version, arm FROM mad.prediction_log WHERE model = @model AND door = 'http' ORDER BY predicted_at", new { model }),
            rows => rows.Count == 12, "the prediction log");
        Assert.Equal(expected.Order(), logged.Order());
    }
}

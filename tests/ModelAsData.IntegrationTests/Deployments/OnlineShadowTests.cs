using System.Globalization;
using System.Text.Json.Nodes;
using ModelAsData.Core.Deployments;

namespace ModelAsData.IntegrationTests.Deployments;

/// <summary>
/// Online shadow (025): CALL mad.predict, mad.predict_async and HTTP under a shadow are answered by the served version;
/// the shadow scores the sampled ones after the answer, into mad.prediction_log with arm shadow.
/// </summary>
public sealed class OnlineShadowTests(PostgresDatabase database) : Requests.OnlineRequestTests(database)
{
    [Fact(Timeout = 120_000)]
    public async Task Shadow_entries_appear_for_the_sampled_keys_only_and_the_answers_stay_the_champions()
    {
        var model = await PostgresDeploymentTests.ThreeReadyVersionsAsync(new PostgresModelRegistry(Database.DataSource));
        await Database.DataSource.ExecuteAsync("SELECT mad.deploy(@model, 'production', 1)", new { model });
        await Database.DataSource.ExecuteAsync("SELECT mad.deploy_shadow(@model, 'production', 2, percent => 50)", new { model });
        var seed = await Database.DataSource.ScalarAsync<long>("SELECT seed FROM mad.deployments WHERE model = @model", new { model });
        await using var roles = new Hostile.HostileRoles(Database);
        var token = await Requests.HttpDoorSupport.TokenAsync(Database, await roles.GroupAsync("scorer", "IN ROLE mad_user"));
        await using var sidecar = await StartSidecarAsync($"127.0.0.1:{Requests.RequestSupport.FreePort()}");
        using var http = Requests.HttpDoorSupport.Client(sidecar, token);

        var sampled = new HashSet<long>();
        for (var k = 1; k <= 24; k++)
        {
            var key = k.ToString(CultureInfo.InvariantCulture);
            var features = Features(k);
            var answer = JsonNode.Parse(await Database.DataSource.ScalarAsync<string>(
                "CALL mad.predict(@model, @features::jsonb, NULL, key => @key)", new { model, features, key }))!;
            Assert.Equal(1, answer["version"]!.GetValue<int>());
            var id = await Database.DataSource.ScalarAsync<long>("SELECT max(id) FROM mad.requests WHERE model = @model", new { model });
            Assert.Equal(StickyBucket.InCanary(seed, key, 50) ? 2 : null,
                await Database.DataSource.ScalarAsync<int?>("SELECT shadow_version FROM mad.requests WHERE id = @id", new { id }));
            if (StickyBucket.InCanary(seed, key, 50))
            {
                sampled.Add(id);
            }
        }

        Assert.NotEmpty(sampled);
        Assert.True(sampled.Count < 24, "a 50 % shadow samples some keys, not all");
        var shadowed = await Eventually.WaitForAsync(
            () => Database.DataSource.QueryAsync<(long RequestId, int Version, string Door, string Outputs, string? Error)>(
                "SELECT request_id, version, door, outputs::text, error FROM mad.prediction_log WHERE model = @model AND arm = 'shadow' AND door = 'call' ORDER BY request_id", new { model }),
            rows => rows.Count >= sampled.Count, "the shadow's log entries");
        Assert.Equal(sampled.Order(), shadowed.Select(s => s.RequestId));
        Assert.All(shadowed, s => Assert.Equal((2, "call", (string?)null), (s.Version, s.Door, s.Error)));
        // The served entries are the champion's, one per request (the log writer flushes them on its own timer, so a
        // shadow entry may land first); each shadow entry equals version 2's own answer.
        var served = await Eventually.WaitForAsync(
            () => Database.DataSource.QueryAsync<(int, string, long)>(
                "SELECT version, arm, count(*) FROM mad.prediction_log WHERE model = @model AND arm <> 'shadow' GROUP BY 1, 2", new { model }),
            rows => rows.Sum(r => r.Item3) >= 24, "the served log entries");
        Assert.Equal([(1, Arms.Champion, 24L)], served);
        foreach (var entry in shadowed)
        {
            var features = await Database.DataSource.ScalarAsync<string>("SELECT features::text FROM mad.requests WHERE id = @id", new { id = entry.RequestId });
            var direct = await Database.DataSource.ScalarAsync<string>("CALL mad.predict(@model, @features::jsonb, NULL)", new { model = model + "@2", features });
            Assert.True(JsonNode.DeepEquals(JsonNode.Parse(direct), JsonNode.Parse(entry.Outputs)), $"{direct} = {entry.Outputs}");
        }

        // predict_async is sampled the same way, by its key.
        var sampledKey = Enumerable.Range(1, 100).Select(k => k.ToString(CultureInfo.InvariantCulture)).First(k => StickyBucket.InCanary(seed, k, 50));
        var async = await Database.DataSource.ScalarAsync<long>("SELECT mad.predict_async(@model, @features::jsonb, key => @key)",
            new { model, features = Features(3), key = sampledKey });
        await Eventually.WaitForAsync(
            () => Database.DataSource.ScalarAsync<long>("SELECT count(*) FROM mad.prediction_log WHERE request_id = @async AND arm = 'shadow' AND door = 'async' AND version = 2", new { async }),
            n => n == 1, "the async request's shadow entry");

        // HTTP: parameters.key samples by the same bucket; the answer is version 1's.
        var httpSampled = 0;
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
            Assert.Equal("1", answer["model_version"]!.GetValue<string>());
            httpSampled += StickyBucket.InCanary(seed, StickyBucket.KeyText(k), 50) ? 1 : 0;
        }

        var httpShadow = await Eventually.WaitForAsync(
            () => Database.DataSource.QueryAsync<(int Version, string? Error)>("SELECT version, error FROM mad.prediction_log WHERE model = @model AND door = 'http' AND arm = 'shadow'", new { model }),
            rows => rows.Count >= httpSampled, "the HTTP shadow entries");
        Assert.Equal(httpSampled, httpShadow.Count);
        Assert.All(httpShadow, s => Assert.Equal((2, (string?)null), s));
    }

    [Fact(Timeout = 120_000)]
    public async Task A_broken_shadow_never_changes_an_answer_and_logs_why_it_failed()
    {
        var model = await PostgresDeploymentTests.ThreeReadyVersionsAsync(new PostgresModelRegistry(Database.DataSource));
        await Database.DataSource.ExecuteAsync("SELECT mad.deploy(@model, 'production', 1); SELECT mad.deploy_shadow(@model, 'production', 2)", new { model });
        await using var sidecar = await StartSidecarAsync();
        var plain = new List<string>();
        for (var k = 1; k <= 5; k++)
        {
            plain.Add(await Database.DataSource.ScalarAsync<string>("CALL mad.predict(@model, @features::jsonb, NULL)", new { model = model + "@1", features = Features(k) }));
        }

        // Version 2's bytes go bad after it was validated: ONNX Runtime refuses them.
        await Database.DataSource.ExecuteAsync("""
            ALTER TABLE mad.model_versions DISABLE TRIGGER USER;
            UPDATE mad.model_versions SET onnx = '\x0102030405'::bytea, sha256 = encode(sha256(random()::text::bytea), 'hex') WHERE model = @model AND version = 2;
            ALTER TABLE mad.model_versions ENABLE TRIGGER USER;
            """, new { model });

        for (var k = 1; k <= 5; k++)
        {
            var answer = await Database.DataSource.ScalarAsync<string>("CALL mad.predict(@model, @features::jsonb, NULL, key => @key)",
                new { model, features = Features(k), key = k.ToString(CultureInfo.InvariantCulture) });
            Assert.True(JsonNode.DeepEquals(JsonNode.Parse(plain[k - 1]), JsonNode.Parse(answer)), $"{plain[k - 1]} = {answer}");
        }

        var failed = await Eventually.WaitForAsync(
            () => Database.DataSource.QueryAsync<(int Version, string? Outputs, string? Error)>(
                "SELECT version, outputs::text, error FROM mad.prediction_log WHERE model = @model AND arm = 'shadow'", new { model }),
            rows => rows.Count >= 5, "the shadow's failed entries", TimeSpan.FromSeconds(60)); // queued behind every other test's log under load
        Assert.Equal(5, failed.Count);
        Assert.All(failed, f =>
        {
            Assert.Equal(2, f.Version);
            Assert.Null(f.Outputs);
            Assert.Contains($"The shadow {model}@2 failed to load", f.Error, StringComparison.Ordinal);
        });
    }

    private static string Features(int k) => string.Create(CultureInfo.InvariantCulture,
        $$"""{"float_input": [{{4.4 + (k % 31) * 0.1:0.0}}, {{2.1 + (k % 19) * 0.1:0.0}}, {{1.2 + (k % 53) * 0.1:0.0}}, {{0.2 + (k % 23) * 0.1:0.0}}]}""");
}

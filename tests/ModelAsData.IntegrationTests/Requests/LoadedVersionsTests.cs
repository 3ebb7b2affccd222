using System.Net;
using ModelAsData.IntegrationTests.Hostile;
using static ModelAsData.IntegrationTests.Requests.HttpDoorSupport;

namespace ModelAsData.IntegrationTests.Requests;

/// <summary>
/// Online scoring keeps at most <c>MaxLoadedVersions</c> versions loaded: the least recently used one is pushed out
/// (seen in the sidecar's /metrics) and loaded again when asked for, and an eviction never disposes a session a
/// request is still using.
/// </summary>
public sealed class LoadedVersionsTests(PostgresDatabase database) : DatabaseTests(database)
{
    [Fact(Timeout = 90_000)]
    public async Task The_least_recently_used_version_is_evicted_and_loaded_again_when_asked_for()
    {
        var (a, b, c) = (await RequestSupport.PushIrisAsync(Database), await RequestSupport.PushIrisAsync(Database), await RequestSupport.PushIrisAsync(Database));
        await using var roles = new HostileRoles(Database);
        var token = await TokenAsync(Database, await roles.GroupAsync("scorer", "IN ROLE mad_user"));
        await using var sidecar = await StartAsync(Database, o => o with { MaxLoadedVersions = 2 });
        using var http = Client(sidecar, token);

        foreach (var model in new[] { a, b, c, b, a })
        {
            using var response = await http.PostAsync($"/v2/models/{model}/infer", Json(IrisBody(1)), Ct);
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        }

        // a, b loaded; c pushes out a; b is used again; a comes back and pushes out c (b is more recent).
        var metrics = await http.GetStringAsync("/metrics", Ct);
        Assert.Contains($"mad_model_evictions_total{{model=\"{a}\"}} 1", metrics, StringComparison.Ordinal);
        Assert.Contains($"mad_model_evictions_total{{model=\"{c}\"}} 1", metrics, StringComparison.Ordinal);
        Assert.DoesNotContain($"mad_model_evictions_total{{model=\"{b}\"}}", metrics, StringComparison.Ordinal);
        Assert.Contains($"mad_model_loads_total{{model=\"{a}\"}} 2", metrics, StringComparison.Ordinal);
        Assert.Contains($"mad_model_loads_total{{model=\"{b}\"}} 1", metrics, StringComparison.Ordinal);
        Assert.Contains("mad_models_loaded 2", metrics, StringComparison.Ordinal);
    }

    [Fact(Timeout = 120_000)]
    public async Task Requests_in_flight_keep_their_version_while_others_evict_it()
    {
        var models = new[] { await RequestSupport.PushIrisAsync(Database), await RequestSupport.PushIrisAsync(Database), await RequestSupport.PushIrisAsync(Database) };
        await using var roles = new HostileRoles(Database);
        var token = await TokenAsync(Database, await roles.GroupAsync("scorer", "IN ROLE mad_user"));
        await using var sidecar = await StartAsync(Database, o => o with { MaxLoadedVersions = 1 });
        using var http = Client(sidecar, token);

        // Four clients cycle through three models with room for one: nearly every request evicts another's version.
        var clients = Enumerable.Range(0, 4).Select(client => Task.Run(async () =>
        {
            var statuses = new List<HttpStatusCode>();
            for (var i = 0; i < 15; i++)
            {
                using var response = await http.PostAsync($"/v2/models/{models[(client + i) % models.Length]}/infer", Json(IrisBody(64)), Ct);
                statuses.Add(response.StatusCode);
            }

            return statuses;
        }, Ct)).ToList();
        var all = (await Task.WhenAll(clients)).SelectMany(s => s).ToList();

        Assert.All(all, s => Assert.Equal(HttpStatusCode.OK, s));
        var metrics = await http.GetStringAsync("/metrics", Ct);
        Assert.Contains("mad_models_loaded 1", metrics, StringComparison.Ordinal);
        Assert.Contains("mad_model_evictions_total{model=", metrics, StringComparison.Ordinal);
    }
}

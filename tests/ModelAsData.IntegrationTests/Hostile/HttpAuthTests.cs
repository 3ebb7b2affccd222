using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json.Nodes;
using Microsoft.Extensions.DependencyInjection;
using ModelAsData.IntegrationTests.Requests;
using ModelAsData.Sidecar.Requests;
using static ModelAsData.IntegrationTests.Requests.HttpDoorSupport;

namespace ModelAsData.IntegrationTests.Hostile;

/// <summary>
/// The sidecar's HTTP door as an attacker meets it: requests typed as with curl against a real sidecar, without a
/// token, with a forged, revoked or expired one, with a token of a role that may not score, with bodies and row
/// counts over the limits, and probing which models exist. Each must be refused with the right status, an OIP error
/// that names no model, and nothing scored (no prediction logged, no model loaded).
/// </summary>
public sealed class HttpAuthTests(PostgresDatabase database) : DatabaseTests(database)
{
    [Fact(Timeout = 60_000)]
    public async Task Without_a_token_every_model_route_is_401_with_a_bearer_challenge_and_names_no_model()
    {
        var model = await RequestSupport.PushIrisAsync(Database);
        await using var sidecar = await StartAsync(Database);
        using var http = Client(sidecar);

        // curl -X POST http://127.0.0.1:PORT/v2/models/<model>/infer -d '…', and the metadata routes an attacker would try.
        var responses = new List<HttpResponseMessage>
        {
            await http.PostAsync($"/v2/models/{model}/infer", Json(IrisBody(1)), Ct),
            await http.PostAsync($"/v2/models/{model}/versions/1/infer", Json(IrisBody(1)), Ct),
            await http.GetAsync($"/v2/models/{model}", Ct),
            await http.GetAsync($"/v2/models/{model}/ready", Ct),
            await http.GetAsync("/v2", Ct),
            await http.GetAsync("/v2/models/no_such_model", Ct),
            await http.GetAsync("/anything/else", Ct),
        };
        using var basic = new HttpRequestMessage(HttpMethod.Get, $"/v2/models/{model}") { Headers = { Authorization = new AuthenticationHeaderValue("Basic", "YWRtaW46YWRtaW4=") } };
        responses.Add(await http.SendAsync(basic, Ct));

        foreach (var response in responses)
        {
            Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode);
            Assert.Equal("Bearer", Assert.Single(response.Headers.WwwAuthenticate).Scheme);
            var error = await ErrorAsync(response);
            Assert.Contains("needs a bearer token", error, StringComparison.Ordinal);
            Assert.DoesNotContain(model, error, StringComparison.Ordinal);
            response.Dispose();
        }

        await AssertNothingScoredAsync(sidecar, model);
    }

    [Fact(Timeout = 60_000)]
    public async Task A_forged_token_is_401_invalid_token()
    {
        var model = await RequestSupport.PushIrisAsync(Database);
        await using var sidecar = await StartAsync(Database);

        // The right shape with random bytes, a token of another system, and an empty bearer.
        foreach (var forged in new[] { "mad_" + Convert.ToHexStringLower(System.Security.Cryptography.RandomNumberGenerator.GetBytes(32)), "eyJhbGciOiJIUzI1NiJ9.e30.x", "mad_' OR 1=1 --" })
        {
            using var http = Client(sidecar, forged);
            using var response = await http.PostAsync($"/v2/models/{model}/infer", Json(IrisBody(1)), Ct);

            Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode);
            Assert.Contains("invalid_token", Assert.Single(response.Headers.WwwAuthenticate).Parameter, StringComparison.Ordinal);
            var error = await ErrorAsync(response);
            Assert.Contains("not valid", error, StringComparison.Ordinal);
            Assert.DoesNotContain(model, error, StringComparison.Ordinal);
        }

        await AssertNothingScoredAsync(sidecar, model);
    }

    [Fact(Timeout = 60_000)]
    public async Task A_revoked_or_expired_token_stops_working_without_a_restart()
    {
        var model = await RequestSupport.PushIrisAsync(Database);
        await using var roles = new HostileRoles(Database);
        var role = await roles.GroupAsync("scorer", "IN ROLE mad_user");
        var revokedToken = await TokenAsync(Database, role, "revoked-app");
        var expiringToken = await TokenAsync(Database, role, "expiring-app");
        await using var sidecar = await StartAsync(Database, o => o with { HttpDoor = o.HttpDoor with { AuthCacheTime = TimeSpan.Zero } });
        using var revoked = Client(sidecar, revokedToken);
        using var expiring = Client(sidecar, expiringToken);
        using (var before = await revoked.PostAsync($"/v2/models/{model}/infer", Json(IrisBody(1)), Ct))
        {
            Assert.Equal(HttpStatusCode.OK, before.StatusCode);
        }

        await Database.DataSource.ExecuteAsync("SELECT mad.revoke_http_token('revoked-app')");
        // Time passing, as the DBA sees it: the token's expiry is now behind us.
        await Database.DataSource.ExecuteAsync("UPDATE mad.http_tokens SET expires_at = now() - interval '1 second' WHERE label = 'expiring-app'");
        using var afterRevoke = await revoked.PostAsync($"/v2/models/{model}/infer", Json(IrisBody(1)), Ct);
        using var afterExpiry = await expiring.PostAsync($"/v2/models/{model}/infer", Json(IrisBody(1)), Ct);

        Assert.Equal(HttpStatusCode.Unauthorized, afterRevoke.StatusCode);
        Assert.Equal(HttpStatusCode.Unauthorized, afterExpiry.StatusCode);
        Assert.Contains("revoked or expired", await ErrorAsync(afterRevoke), StringComparison.Ordinal);
        await AssertLoggedOnceAsync(model);
        var statuses = await Database.DataSource.QueryAsync<(string Label, string Status)>("SELECT label, status FROM mad.list_http_tokens() WHERE label IN ('revoked-app', 'expiring-app') ORDER BY label");
        Assert.Equal([("expiring-app", "expired"), ("revoked-app", "revoked")], statuses);
    }

    [Fact(Timeout = 60_000)]
    public async Task A_token_of_a_role_that_may_not_score_is_403_and_a_revoked_grant_takes_effect_at_once()
    {
        var model = await RequestSupport.PushIrisAsync(Database);
        await using var roles = new HostileRoles(Database);
        var outsider = await roles.GroupAsync("outsider");                          // no mad role at all
        var noinherit = await roles.GroupAsync("noinherit", "NOINHERIT IN ROLE mad_user"); // SQL's EXECUTE gate refuses it too
        var scorer = await roles.GroupAsync("scorer", "IN ROLE mad_user");
        var outsiderToken = await TokenAsync(Database, outsider);
        var noinheritToken = await TokenAsync(Database, noinherit);
        var scorerToken = await TokenAsync(Database, scorer);
        await using var sidecar = await StartAsync(Database, o => o with { HttpDoor = o.HttpDoor with { AuthCacheTime = TimeSpan.Zero } });

        foreach (var (token, role) in new[] { (outsiderToken, outsider), (noinheritToken, noinherit) })
        {
            using var http = Client(sidecar, token);
            using var infer = await http.PostAsync($"/v2/models/{model}/infer", Json(IrisBody(1)), Ct);
            using var missing = await http.GetAsync("/v2/models/no_such_model", Ct);
            Assert.Equal(HttpStatusCode.Forbidden, infer.StatusCode);
            Assert.Equal(HttpStatusCode.Forbidden, missing.StatusCode);
            var error = await ErrorAsync(infer);
            Assert.Contains($"role '{role}', which may not score", error, StringComparison.Ordinal);
            Assert.Contains($"GRANT mad_user TO \"{role}\"", error, StringComparison.Ordinal);
            Assert.DoesNotContain(model, error, StringComparison.Ordinal);
            Assert.Equal(error, await ErrorAsync(missing)); // the same answer whether the model exists or not
        }

        using var scoring = Client(sidecar, scorerToken);
        using (var allowed = await scoring.PostAsync($"/v2/models/{model}/infer", Json(IrisBody(1)), Ct))
        {
            Assert.Equal(HttpStatusCode.OK, allowed.StatusCode);
        }

        await Database.DataSource.ExecuteAsync($"REVOKE mad_user FROM {scorer}");
        using var afterRevoke = await scoring.PostAsync($"/v2/models/{model}/infer", Json(IrisBody(1)), Ct);

        Assert.Equal(HttpStatusCode.Forbidden, afterRevoke.StatusCode);
        await AssertLoggedOnceAsync(model);
    }

    [Fact(Timeout = 60_000)]
    public async Task Probing_model_names_learns_nothing_without_a_token_and_only_the_registry_with_one()
    {
        var model = await RequestSupport.PushIrisAsync(Database);
        await using var roles = new HostileRoles(Database);
        var token = await TokenAsync(Database, await roles.GroupAsync("scorer", "IN ROLE mad_user"));
        await using var sidecar = await StartAsync(Database);
        using var anonymous = Client(sidecar);
        using var authorised = Client(sidecar, token);

        using var existing = await anonymous.GetAsync($"/v2/models/{model}/versions/1", Ct);
        using var missing = await anonymous.GetAsync("/v2/models/surely_missing/versions/1", Ct);
        using var missingVersion = await anonymous.GetAsync($"/v2/models/{model}/versions/99", Ct);
        var bodies = new[] { await existing.Content.ReadAsStringAsync(Ct), await missing.Content.ReadAsStringAsync(Ct), await missingVersion.Content.ReadAsStringAsync(Ct) };

        Assert.All(new[] { existing, missing, missingVersion }, r => Assert.Equal(HttpStatusCode.Unauthorized, r.StatusCode));
        Assert.Single(bodies.Distinct()); // one answer for all three: no oracle
        // An authorised caller gets what SQL gives a mad_user: the missing name, and the registry's message.
        using var named = await authorised.GetAsync("/v2/models/surely_missing", Ct);
        Assert.Equal(HttpStatusCode.NotFound, named.StatusCode);
        Assert.Contains("'surely_missing' does not exist", await ErrorAsync(named), StringComparison.Ordinal);
    }

    [Fact(Timeout = 60_000)]
    public async Task Health_stays_open_for_probes_without_a_token()
    {
        await using var sidecar = await StartAsync(Database);
        using var http = Client(sidecar);

        using var live = await http.GetAsync("/v2/health/live", Ct);
        using var ready = await http.GetAsync("/v2/health/ready", Ct);

        Assert.Equal(HttpStatusCode.OK, live.StatusCode);
        Assert.Equal(HttpStatusCode.OK, ready.StatusCode);
    }

    [Fact(Timeout = 60_000)]
    public async Task Ready_says_only_that_the_database_does_not_answer_and_names_no_login()
    {
        await using var roles = new HostileRoles(Database);
        var (login, _) = await roles.LoginAsync("engine", "IN ROLE mad_sidecar");
        await using var sidecar = await StartAsync(Database, Database.ConnectionStringFor(login, HostileRoles.Password));
        using var http = Client(sidecar);
        using var before = await http.GetAsync("/v2/health/ready", Ct);

        // The sidecar's login is locked out, so its next connection is refused with a message naming the login.
        await Database.DataSource.ExecuteAsync($"ALTER ROLE {login} NOLOGIN");
        await Database.DataSource.ExecuteAsync("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = @login", new { login });
        // curl http://127.0.0.1:PORT/v2/health/ready, as any prober on the network may.
        using var after = await http.GetAsync("/v2/health/ready", Ct);
        var body = await after.Content.ReadAsStringAsync(Ct);

        Assert.Equal(HttpStatusCode.OK, before.StatusCode);
        Assert.Equal(HttpStatusCode.ServiceUnavailable, after.StatusCode);
        Assert.Contains("does not answer", body, StringComparison.Ordinal);
        Assert.DoesNotContain(login, body, StringComparison.OrdinalIgnoreCase);
        Assert.DoesNotContain("permitted", body, StringComparison.Ordinal);
        Assert.DoesNotContain(new Npgsql.NpgsqlConnectionStringBuilder(Database.ConnectionString).Database!, body, StringComparison.Ordinal);
    }

    [Fact(Timeout = 60_000)]
    public async Task An_oversized_body_is_413_whether_it_declares_its_length_or_streams_it()
    {
        var model = await RequestSupport.PushIrisAsync(Database);
        await using var roles = new HostileRoles(Database);
        var token = await TokenAsync(Database, await roles.GroupAsync("scorer", "IN ROLE mad_user"));
        await using var sidecar = await StartAsync(Database);
        using var http = Client(sidecar, token);
        var huge = "{\"inputs\": [], \"pad\": \"" + new string('x', 5 * 1024 * 1024) + "\"}"; // over the 4 MiB default

        // As curl sends a large body: with Expect: 100-continue, so a refusal arrives before the body is sent.
        http.DefaultRequestHeaders.ExpectContinue = true;
        using var declared = await http.PostAsync($"/v2/models/{model}/infer", Json(huge), Ct);
        http.DefaultRequestHeaders.TransferEncodingChunked = true; // no Content-Length: Kestrel stops reading at the limit
        using var chunked = await http.PostAsync($"/v2/models/{model}/infer",
            new StreamContent(new MemoryStream(System.Text.Encoding.UTF8.GetBytes(huge))) { Headers = { ContentType = new MediaTypeHeaderValue("application/json") } }, Ct);

        Assert.Equal(HttpStatusCode.RequestEntityTooLarge, declared.StatusCode);
        Assert.Contains("4,194,304 bytes", await ErrorAsync(declared), StringComparison.Ordinal);
        Assert.Equal(HttpStatusCode.RequestEntityTooLarge, chunked.StatusCode);
        Assert.Contains("larger than this sidecar takes", await ErrorAsync(chunked), StringComparison.Ordinal);
        await AssertNothingScoredAsync(sidecar, model);
    }

    [Fact(Timeout = 60_000)]
    public async Task Too_many_rows_in_one_request_is_400_before_anything_is_scored()
    {
        var model = await RequestSupport.PushIrisAsync(Database);
        await using var roles = new HostileRoles(Database);
        var token = await TokenAsync(Database, await roles.GroupAsync("scorer", "IN ROLE mad_user"));
        await using var sidecar = await StartAsync(Database);
        using var http = Client(sidecar, token);

        using var response = await http.PostAsync($"/v2/models/{model}/infer", Json(IrisBody(10_001)), Ct);

        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        var error = await ErrorAsync(response);
        Assert.Contains("has 10001 rows", error, StringComparison.Ordinal);
        Assert.Contains("at most 10,000 rows", error, StringComparison.Ordinal);
        await AssertNothingScoredAsync(sidecar, model);
    }

    [Fact(Timeout = 60_000)]
    public async Task A_mad_user_cannot_make_read_or_check_tokens_in_sql()
    {
        await using var roles = new HostileRoles(Database);
        var (user, source) = await roles.LoginAsync("attacker", "IN ROLE mad_user");
        var before = await Database.DataSource.ScalarAsync<long>("SELECT count(*) FROM mad.http_tokens");

        var create = await source.FailsAsync($"SELECT mad.create_http_token('{user}', 'mine')");
        var read = await source.FailsAsync("SELECT token_sha256 FROM mad.http_tokens");
        var check = await source.FailsAsync("SELECT * FROM mad.check_http_token(repeat('0', 64))");
        var list = await source.FailsAsync("SELECT * FROM mad.list_http_tokens()");
        var revoke = await source.FailsAsync("SELECT mad.revoke_http_token('anything')");

        Assert.All(new[] { create, read, check, list, revoke }, e => Assert.Equal(PostgresErrorCodes.InsufficientPrivilege, e.SqlState));
        Assert.Contains("permission denied for function create_http_token", create.MessageText, StringComparison.Ordinal);
        Assert.Contains("permission denied for table http_tokens", read.MessageText, StringComparison.Ordinal);
        Assert.Equal(before, await Database.DataSource.ScalarAsync<long>("SELECT count(*) FROM mad.http_tokens"));
    }

    [Fact(Timeout = 60_000)]
    public async Task A_port_alone_binds_loopback_and_a_public_bind_keeps_metrics_off()
    {
        await using var loopback = await StartAsync(Database, http: RequestSupport.FreePort().ToString(System.Globalization.CultureInfo.InvariantCulture));
        await using var everywhere = await StartAsync(Database, http: $"0.0.0.0:{RequestSupport.FreePort()}");
        using var local = Client(loopback);
        using var open = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{everywhere.Services.GetRequiredService<HttpInferenceService>().Address!.Port}") };

        Assert.Equal("127.0.0.1", local.BaseAddress!.Host);
        using var localMetrics = await local.GetAsync("/metrics", Ct);
        using var publicMetrics = await open.GetAsync("/metrics", Ct);
        Assert.Equal(HttpStatusCode.OK, localMetrics.StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, publicMetrics.StatusCode);
        Assert.Contains("--metrics", await ErrorAsync(publicMetrics), StringComparison.Ordinal);
    }

    /// <summary>The one request that was allowed reached the prediction log (written asynchronously), and nothing else did.</summary>
    private async Task AssertLoggedOnceAsync(string model) =>
        await Eventually.WaitForAsync(() => Database.DataSource.ScalarAsync<long>("SELECT count(*) FROM mad.prediction_log WHERE model = @model", new { model }),
            n => n == 1, "the one allowed prediction in the log");

    [Fact(Timeout = 60_000)]
    public async Task Metrics_on_an_address_of_its_own_serve_only_metrics_there_and_not_on_the_door()
    {
        var metricsPort = RequestSupport.FreePort();
        await using var sidecar = await StartAsync(Database, o => o with { HttpDoor = o.HttpDoor with { Metrics = $"127.0.0.1:{metricsPort}" } });
        using var door = Client(sidecar);
        using var metrics = new HttpClient { BaseAddress = sidecar.Services.GetRequiredService<HttpInferenceService>().MetricsAddress };

        using var scraped = await metrics.GetAsync("/metrics", Ct);
        using var inferOnMetrics = await metrics.PostAsync("/v2/models/anything/infer", Json(IrisBody(1)), Ct);
        using var metricsOnDoor = await door.GetAsync("/metrics", Ct);

        Assert.Equal(metricsPort, metrics.BaseAddress!.Port);
        Assert.Equal(HttpStatusCode.OK, scraped.StatusCode);
        Assert.Contains("mad_online_requests_total", await scraped.Content.ReadAsStringAsync(Ct), StringComparison.Ordinal);
        Assert.Equal(HttpStatusCode.NotFound, inferOnMetrics.StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, metricsOnDoor.StatusCode);
    }

    private static async Task<string> ErrorAsync(HttpResponseMessage response)
    {
        Assert.Equal("application/json", response.Content.Headers.ContentType?.MediaType);
        return (await response.Content.ReadFromJsonAsync<JsonObject>(Ct))!["error"]!.GetValue<string>();
    }

    /// <summary>Nothing was logged for the model and it was never loaded (the sidecar's own metrics say so).</summary>
    private async Task AssertNothingScoredAsync(RunningSidecar sidecar, string model)
    {
        Assert.Equal(0, await Database.DataSource.ScalarAsync<long>("SELECT count(*) FROM mad.prediction_log WHERE model = @model", new { model }));
        var metrics = sidecar.Services.GetRequiredService<RequestMetrics>();
        Assert.Equal(0, metrics.ModelLoads.WithLabels(model).Value);
        Assert.Equal(0, metrics.RowsScored.WithLabels(model).Value);
    }
}

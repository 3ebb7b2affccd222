using System.Collections.Concurrent;
using System.Text.Json.Nodes;
using ModelAsData.Postgres.Requests;
using ModelAsData.IntegrationTests.Requests;
using static ModelAsData.IntegrationTests.Requests.RequestSupport;

namespace ModelAsData.IntegrationTests.Hostile;

/// <summary>
/// LISTEN and NOTIFY need no privilege: any login may listen on mad's channels and send on them. A listener must learn
/// nothing of anyone's features or answers, and a forged notification must change no request: at most it wakes a
/// sidecar, which finds nothing new in the table.
/// </summary>
public sealed class NotifyTests(PostgresDatabase database) : OnlineRequestTests(database)
{
    private static readonly string[] Channels = ["mad_requests", "mad_reply", "mad_models", "mad_jobs", "mad_rows"];

    [Fact(Timeout = 90_000)]
    public async Task A_login_listening_on_every_channel_hears_no_features_and_no_answers()
    {
        var model = await PushIrisAsync();
        await using var sidecar = await StartSidecarAsync();
        await using var roles = new HostileRoles(Database);
        var (_, attackerSource) = await roles.LoginAsync("eve");
        var (_, victim) = await roles.LoginAsync("alice", "IN ROLE mad_user");

        await using var eavesdropper = await attackerSource.OpenConnectionAsync(Ct);
        var heard = new ConcurrentQueue<(string Channel, string Payload)>();
        eavesdropper.Notification += (_, n) => heard.Enqueue((n.Channel, n.Payload));
        await using (var listen = new NpgsqlCommand(string.Join("; ", Channels.Select(c => $"LISTEN {c}")), eavesdropper))
        {
            await listen.ExecuteNonQueryAsync(Ct);
        }

        var client = new PostgresRequestClient(victim);
        Assert.Equal(2, JsonNode.Parse(await CallAsync(victim, model, Virginica))!["label"]!.GetValue<long>());
        Assert.Equal(2, (await client.PredictAsync(model, Virginica, TimeSpan.FromSeconds(20), Ct))["label"]!.GetValue<long>());

        // Both requests woke the sidecar on mad_requests, and the async one was announced on mad_reply: the
        // eavesdropper hears them, so what it hears is what an attacker gets.
        using var quiet = CancellationTokenSource.CreateLinkedTokenSource(Ct);
        quiet.CancelAfter(TimeSpan.FromSeconds(20));
        while (heard.Count(h => h.Channel == "mad_requests") < 2 || !heard.Any(h => h.Channel == "mad_reply"))
        {
            await eavesdropper.WaitAsync(quiet.Token);
        }

        foreach (var (channel, payload) in heard)
        {
            foreach (var secret in new[] { "float_input", "6.3", "2.5", "label", "probability", "result" })
            {
                Assert.False(payload.Contains(secret, StringComparison.Ordinal), $"{channel} carried '{secret}': {payload}");
            }
        }
    }

    [Fact(Timeout = 120_000)]
    public async Task Forged_notifications_change_no_request_and_each_caller_is_answered_from_its_own_features()
    {
        var model = await PushIrisAsync();
        await using var roles = new HostileRoles(Database);
        var (_, attacker) = await roles.LoginAsync("mallory", "IN ROLE mad_user");
        var (victimName, victim) = await roles.LoginAsync("alice", "IN ROLE mad_user");
        var sidecarId = Sql.UniqueName("external");
        using var process = StartExternalSidecar(Database.ConnectionString, sidecarId);
        try
        {
            await WaitForWorkerAsync(sidecarId);
            // Frozen (SIGSTOP) so that everything below is in its socket, in this order, when it reads again.
            Signal(process, "STOP");

            // The attacker learns where the ids are with a request of its own, then forges the next ones: scored with
            // its features (virginica), claimed "already answered", or answered before they were asked.
            var own = await attacker.ScalarAsync<long>($"SELECT mad.predict_async('{model}', '{Versicolor}')");
            var forgedFeatures = Virginica.Replace("\"", "\\\"", StringComparison.Ordinal);
            foreach (var id in Enumerable.Range(1, 3).Select(i => own + i))
            {
                foreach (var kind in new[] { "call", "async" })
                {
                    await attacker.ExecuteAsync($$"""NOTIFY mad_requests, '{"s": "{{sidecarId}}", "id": {{id}}, "k": "{{kind}}", "r": "{{model}}", "m": "{{model}}", "v": 1, "f": "{{forgedFeatures}}"}'""");
                }

                await attacker.ExecuteAsync($$"""NOTIFY mad_requests, '{"s": "another_sidecar", "id": {{id}}, "k": "call", "r": "{{model}}", "m": "{{model}}", "v": 1, "f": "{{forgedFeatures}}"}'""");
                await attacker.ExecuteAsync($$"""NOTIFY mad_reply, '{"id": {{id}}, "status": "done"}'""");
                await attacker.ExecuteAsync($$"""NOTIFY mad_reply, '{"id": {{id}}, "status": "failed"}'""");
            }

            await attacker.ExecuteAsync($"NOTIFY mad_requests, '{sidecarId}'; NOTIFY mad_requests, 'not json {{'; NOTIFY mad_requests");

            // The victim asks afterwards: a CALL (waiting) and an async request.
            var call = CallAsync(victim, model, Setosa);
            await Eventually.WaitForAsync(() => Database.DataSource.ScalarAsync<long>("SELECT count(*) FROM mad.requests WHERE requested_by = @victimName", new { victimName }),
                n => n == 1, "the victim's CALL to be recorded");
            var asked = await victim.ScalarAsync<long>($"SELECT mad.predict_async('{model}', '{Setosa}')");
            Assert.InRange(asked, own + 1, own + 3); // the attacker guessed right

            Signal(process, "CONT");

            Assert.Equal(0, JsonNode.Parse(await call)!["label"]!.GetValue<long>());
            var answer = await new PostgresRequestClient(victim).PredictAsync(model, Setosa, TimeSpan.FromSeconds(30), Ct); // a new request, to see the sidecar still answers
            Assert.Equal(0, answer["label"]!.GetValue<long>());
            var rows = await Eventually.WaitForAsync(
                () => Database.DataSource.QueryAsync<(long Id, string Status, string Features, long? Label)>(
                    "SELECT id, status, features::text, (result->>'label')::bigint FROM mad.requests WHERE model = @model ORDER BY id", new { model }),
                r => r.All(x => x.Status == "done"), "every request to be answered");
            Assert.Equal(4, rows.Count);
            foreach (var row in rows)
            {
                Assert.Equal(row.Id == own ? 1 : 0, row.Label); // each from its own features
            }

            // The forged features were never scored, and nothing was answered twice.
            await Task.Delay(300, Ct); // the prediction log is written in batches
            Assert.Equal(0L, await Database.DataSource.ScalarAsync<long>("SELECT count(*) FROM mad.prediction_log WHERE model = @model AND inputs_sha256 = mad.inputs_hash(@features::jsonb)", new { model, features = Virginica }));
            Assert.Equal(4L, await Eventually.WaitForAsync(() => Database.DataSource.ScalarAsync<long>("SELECT count(*) FROM mad.prediction_log WHERE model = @model", new { model }), n => n >= 4, "the prediction log"));
        }
        finally
        {
            if (!process.HasExited)
            {
                Signal(process, "CONT");
                process.Kill();
            }

            await process.WaitForExitAsync(Ct);
        }
    }

    [Fact(Timeout = 60_000)]
    public async Task Features_over_the_size_limit_are_refused_before_anything_is_recorded()
    {
        var model = await PushIrisAsync();
        await using var sidecar = await StartSidecarAsync();
        await using var roles = new HostileRoles(Database);
        var (attackerName, attacker) = await roles.LoginAsync("mallory", "IN ROLE mad_user");
        const string Padded = """'{"float_input": [5.1, 3.5, 1.4, 0.2], "padding": "' || repeat('x', 2000000) || '"}'""";

        var async = await attacker.FailsAsync($"SELECT mad.predict_async('{model}', ({Padded})::jsonb)");
        var call = await attacker.FailsAsync($"CALL mad.predict('{model}', ({Padded})::jsonb, NULL)");

        foreach (var error in new[] { async, call })
        {
            Assert.Equal("22M01", error.SqlState);
            Assert.Contains("the limit is 1048576 bytes (mad.settings max_features_bytes)", error.MessageText, StringComparison.Ordinal);
            Assert.Contains("UPDATE mad.settings SET value", error.Hint, StringComparison.Ordinal);
        }

        Assert.Equal(0L, await Database.DataSource.ScalarAsync<long>("SELECT count(*) FROM mad.requests WHERE requested_by = @attackerName", new { attackerName }));

        // The limit is the DBA's to set.
        await Database.DataSource.ExecuteAsync("UPDATE mad.settings SET value = '16' WHERE name = 'max_features_bytes'");
        try
        {
            var small = await attacker.FailsAsync($"SELECT mad.predict_async('{model}', '{Setosa}')");
            Assert.Contains("the limit is 16 bytes", small.MessageText, StringComparison.Ordinal);
        }
        finally
        {
            await Database.DataSource.ExecuteAsync("UPDATE mad.settings SET value = '1048576' WHERE name = 'max_features_bytes'");
        }

        Assert.Equal(0, JsonNode.Parse(await CallAsync(attacker, model, Setosa))!["label"]!.GetValue<long>());
    }
}

using System.Text.Json.Nodes;
using ModelAsData.Postgres;
using ModelAsData.Postgres.Requests;
using static ModelAsData.IntegrationTests.Requests.RequestSupport;

namespace ModelAsData.IntegrationTests.Requests;

/// <summary>CALL mad.predict and mad.predict_async against a real server and a sidecar running in-process.</summary>
public sealed class PredictProcedureTests(PostgresDatabase database) : OnlineRequestTests(database)
{
    [Fact(Timeout = 60_000)]
    public async Task Call_returns_the_label_the_probabilities_and_the_version()
    {
        var model = await PushIrisAsync();
        await using var sidecar = await StartSidecarAsync();

        var setosa = JsonNode.Parse(await CallAsync(Database.DataSource, model, Setosa))!;
        var versicolor = JsonNode.Parse(await CallAsync(Database.DataSource, $"{model}@1", Versicolor))!;
        var virginica = await new PostgresRequestClient(Database.DataSource).CallAsync(model, Virginica, Ct);

        Assert.Equal(0, setosa["label"]!.GetValue<long>());
        Assert.Equal(0.99999934, setosa["probability_0"]!.GetValue<double>(), 6);
        Assert.Equal(1, versicolor["label"]!.GetValue<long>());
        Assert.Equal(0.98999935, versicolor["probability_1"]!.GetValue<double>(), 6);
        Assert.Equal(0.01, versicolor["probability_2"]!.GetValue<double>(), 6);
        Assert.Equal(2, virginica["label"]!.GetValue<long>());
        Assert.Equal(1, setosa["version"]!.GetValue<int>());
        Assert.Equal(model, setosa["model"]!.GetValue<string>());

        // Traceable: every answer is logged with its version and the hash of its inputs.
        var logged = await Eventually.WaitForAsync(
            () => Database.DataSource.ScalarAsync<long>("SELECT count(*) FROM mad.prediction_log WHERE model = @model AND version = 1 AND door = 'call' AND inputs_sha256 = mad.inputs_hash(@features::jsonb)", new { model, features = Setosa }),
            n => n >= 1, "the prediction log");
        Assert.Equal(1, logged);
        Assert.Equal("done", await Database.DataSource.ScalarAsync<string>("SELECT status FROM mad.requests WHERE model = @model ORDER BY id LIMIT 1", new { model }));
    }

    [Fact(Timeout = 60_000)]
    public async Task Predict_async_answers_on_mad_reply_and_the_answer_stays_in_mad_requests()
    {
        var model = await PushIrisAsync();
        await using var sidecar = await StartSidecarAsync();

        var answer = await new PostgresRequestClient(Database.DataSource).PredictAsync(model, Versicolor, TimeSpan.FromSeconds(20), Ct);

        Assert.Equal(1, answer["label"]!.GetValue<long>());
        var stored = await Database.DataSource.ScalarAsync<string>("SELECT result::text FROM mad.requests WHERE model = @model AND kind = 'async'", new { model });
        Assert.Equal(1, JsonNode.Parse(stored)!["label"]!.GetValue<long>());
    }

    [Fact(Timeout = 60_000)]
    public async Task Inside_an_explicit_transaction_call_fails_at_once_naming_the_alternatives()
    {
        var model = await PushIrisAsync();
        await using var sidecar = await StartSidecarAsync();
        await using var connection = await Database.DataSource.OpenConnectionAsync(Ct);

        // A transaction that has written: the procedure says so itself.
        await using (var transaction = await connection.BeginTransactionAsync(Ct))
        {
            await using var write = new NpgsqlCommand("CREATE TEMP TABLE t_written (x int)", connection, transaction);
            await write.ExecuteNonQueryAsync(Ct);
            await using var call = new NpgsqlCommand("CALL mad.predict($1, $2::jsonb, NULL)", connection, transaction) { Parameters = { new() { Value = model }, new() { Value = Setosa } } };
            var error = await Assert.ThrowsAsync<PostgresException>(() => call.ExecuteScalarAsync(Ct));
            Assert.Equal(PostgresErrorCodes.ActiveSqlTransaction, error.SqlState);
            Assert.Contains("explicit transaction", error.MessageText, StringComparison.Ordinal);
            Assert.Contains("predict_async", error.Hint, StringComparison.Ordinal);
            Assert.Contains("/v2/models", error.Hint, StringComparison.Ordinal);
        }

        // One that has not: PostgreSQL refuses the procedure's COMMIT; the client names the alternatives.
        await using (var transaction = await connection.BeginTransactionAsync(Ct))
        {
            await using var call = new NpgsqlCommand("CALL mad.predict($1, $2::jsonb, NULL)", connection, transaction) { Parameters = { new() { Value = model }, new() { Value = Setosa } } };
            var error = await Assert.ThrowsAsync<PostgresException>(() => call.ExecuteScalarAsync(Ct));
            var mapped = ModelAsData.Postgres.PostgresErrors.Map(error, Database.ConnectionString);
            Assert.Equal(ErrorCode.Conflict, mapped.Code);
            Assert.Contains("predict_async", mapped.Message, StringComparison.Ordinal);
            Assert.Contains("/v2/models", mapped.Message, StringComparison.Ordinal);
        }

        Assert.Equal(0, await Database.DataSource.ScalarAsync<long>("SELECT count(*) FROM mad.requests WHERE model = @model", new { model }));
    }

    [Fact(Timeout = 60_000)]
    public async Task A_missing_model_or_alias_fails_clearly()
    {
        var model = await PushIrisAsync();
        await using var sidecar = await StartSidecarAsync();
        var client = new PostgresRequestClient(Database.DataSource);

        var noModel = await Assert.ThrowsAsync<ModelAsDataException>(() => client.CallAsync("no_such_model", Setosa, Ct));
        var noAlias = await Assert.ThrowsAsync<ModelAsDataException>(() => client.CallAsync($"{model}@staging", Setosa, Ct));
        var noVersion = await Assert.ThrowsAsync<ModelAsDataException>(() => client.CallAsync($"{model}@9", Setosa, Ct));

        Assert.Equal(ErrorCode.NotFound, noModel.Code);
        Assert.Contains("'no_such_model' does not exist", noModel.Message, StringComparison.Ordinal);
        Assert.Equal(ErrorCode.NotFound, noAlias.Code);
        Assert.Contains("no alias 'staging'", noAlias.Message, StringComparison.Ordinal);
        Assert.Equal(ErrorCode.NotFound, noVersion.Code);
    }

    [Fact(Timeout = 60_000)]
    public async Task Features_that_do_not_fit_fail_clearly_and_the_failure_is_logged()
    {
        var model = await PushIrisAsync();
        await using var sidecar = await StartSidecarAsync();
        var client = new PostgresRequestClient(Database.DataSource);

        var tooFew = await Assert.ThrowsAsync<ModelAsDataException>(() => client.CallAsync(model, """{"float_input": [5.1, 3.5]}""", Ct));
        var unknown = await Assert.ThrowsAsync<ModelAsDataException>(() => client.CallAsync(model, """{"sepal": 1}""", Ct));
        var text = await Assert.ThrowsAsync<ModelAsDataException>(() => client.CallAsync(model, """{"float_input": ["a", 3.5, 1, 2]}""", Ct));
        var notObject = await Assert.ThrowsAsync<ModelAsDataException>(() => client.CallAsync(model, "[1, 2]", Ct));

        Assert.All(new[] { tooFew, unknown, text, notObject }, e => Assert.Equal(ErrorCode.FeatureMismatch, e.Code));
        Assert.Contains("takes 4 value(s); 2 given", tooFew.Message, StringComparison.Ordinal);
        Assert.Contains("no input 'sepal'", unknown.Message, StringComparison.Ordinal);
        Assert.Contains("float_input", text.Message, StringComparison.Ordinal);
        Assert.Contains("JSON object", notObject.Message, StringComparison.Ordinal);
        // The sidecar survives bad input and keeps answering.
        Assert.Equal(0, (await client.CallAsync(model, Setosa, Ct))["label"]!.GetValue<long>());
    }

    [Fact(Timeout = 60_000)]
    public async Task Identifiers_and_values_cannot_inject_sql()
    {
        var model = await PushIrisAsync();
        await using var sidecar = await StartSidecarAsync();
        var client = new PostgresRequestClient(Database.DataSource);

        var name = await Assert.ThrowsAsync<ModelAsDataException>(() => client.CallAsync("iris'; DROP TABLE mad.requests; --", Setosa, Ct));
        var alias = await Assert.ThrowsAsync<ModelAsDataException>(() => client.CallAsync($"{model}@x\"; DROP TABLE mad.requests; --", Setosa, Ct));
        var value = await Assert.ThrowsAsync<ModelAsDataException>(() => client.CallAsync(model, """{"float_input": ["'); DROP TABLE mad.requests; --", 1, 2, 3]}""", Ct));
        var asyncName = await Database.DataSource.FailsAsync("SELECT mad.predict_async('a@b@c', '{}')");

        Assert.Equal(ErrorCode.InvalidName, name.Code);
        Assert.Equal(ErrorCode.InvalidName, alias.Code);
        Assert.Equal(ErrorCode.FeatureMismatch, value.Code);
        Assert.Equal(PostgresErrorCodes.InvalidName, asyncName.SqlState);
        Assert.True(await Database.DataSource.ScalarAsync<bool>("SELECT to_regclass('mad.requests') IS NOT NULL"));
    }

    [Fact(Timeout = 60_000)]
    public async Task A_mad_user_may_call_predict_and_predict_async()
    {
        var model = await PushIrisAsync();
        await using var sidecar = await StartSidecarAsync();
        var name = Sql.UniqueName("app");
        await Database.DataSource.ExecuteAsync($"CREATE ROLE {name} LOGIN PASSWORD 'test-only' IN ROLE mad_user");
        try
        {
            await using (var login = PostgresDataSource.Create(Database.ConnectionStringFor(name, "test-only")))
            {
                var client = new PostgresRequestClient(login);
                Assert.Equal(2, (await client.CallAsync(model, Virginica, Ct))["label"]!.GetValue<long>());
                Assert.Equal(0, (await client.PredictAsync(model, Setosa, TimeSpan.FromSeconds(20), Ct))["label"]!.GetValue<long>());
                // A mad_user cannot write requests or answers directly.
                var direct = await login.FailsAsync("UPDATE mad.requests SET status = 'done'");
                var answer = await login.FailsAsync("SELECT mad.answer_requests('x', '[]')");
                Assert.Equal(PostgresErrorCodes.InsufficientPrivilege, direct.SqlState);
                Assert.Equal(PostgresErrorCodes.InsufficientPrivilege, answer.SqlState);
            }

            NpgsqlConnection.ClearAllPools();
        }
        finally
        {
            await Database.DataSource.ExecuteAsync($"DROP OWNED BY {name}; DROP ROLE IF EXISTS {name}");
        }
    }

    [Fact(Timeout = 60_000)]
    public async Task Finished_requests_are_purged_after_their_retention_and_open_ones_are_kept()
    {
        var model = await PushIrisAsync();
        await using (var sidecar = await StartSidecarAsync())
        {
            await CallAsync(Database.DataSource, model, Setosa);
        }

        var open = await Database.DataSource.ScalarAsync<long>("SELECT mad.predict_async(@model, @features::jsonb)", new { model, features = Setosa });
        await Database.DataSource.ExecuteAsync("UPDATE mad.requests SET created_at = created_at - interval '25 hours' WHERE model = @model", new { model });

        var purged = await Database.DataSource.ScalarAsync<long>("SELECT mad.purge_requests()");

        Assert.True(purged >= 1);
        var left = await Database.DataSource.QueryAsync<long>("SELECT id FROM mad.requests WHERE model = @model", new { model });
        Assert.Equal([open], left);
        // The log keeps the prediction.
        await Eventually.WaitForAsync(() => Database.DataSource.ScalarAsync<long>("SELECT count(*) FROM mad.prediction_log WHERE model = @model", new { model }), n => n == 1, "the logged prediction");
    }
}

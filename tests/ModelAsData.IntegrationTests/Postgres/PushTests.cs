using System.Security.Cryptography;
using System.Text.Json.Nodes;

namespace ModelAsData.IntegrationTests.Postgres;

public sealed class PushTests(PostgresDatabase database) : RegistryTests(database)
{
    [Fact(Timeout = 90_000)]
    public async Task Push_from_theRegistry_stores_a_pending_version_with_sha256_size_metadata_and_who()
    {
        var model = Sql.UniqueName("churn");
        var bytes = TestModels.Bytes("skl2onnx_rf_iris.onnx");

        var version = await Registry.PushAsync(model, bytes, new JsonObject { ["trained_on"] = "2026-11" }, Ct);

        Assert.Equal(1, version.Version);
        Assert.Equal(VersionStatus.Pending, version.Status);
        Assert.Equal(Convert.ToHexStringLower(SHA256.HashData(bytes)), version.Sha256);
        Assert.Equal(bytes.Length, version.SizeBytes);
        Assert.Equal("2026-11", (string?)version.Metadata["trained_on"]);
        Assert.Null(version.Signature);
        Assert.Equal(new NpgsqlConnectionStringBuilder(Database.ConnectionString).Username, version.CreatedBy);
        Assert.InRange(version.CreatedAt, DateTimeOffset.UtcNow.AddMinutes(-5), DateTimeOffset.UtcNow.AddMinutes(5));
        Assert.Equal(bytes, await Registry.LoadBytesAsync(model, 1, Ct));
    }

    [Fact(Timeout = 90_000)]
    public async Task Push_from_sql_numbers_versions_per_model_and_notifies_mad_models()
    {
        var model = Sql.UniqueName("churn");
        await using var listener = await Database.DataSource.OpenConnectionAsync(Ct);
        var received = new List<string>();
        listener.Notification += (_, e) => received.Add(e.Payload);
        await using (var listen = new NpgsqlCommand("LISTEN mad_models", listener))
        {
            await listen.ExecuteNonQueryAsync(Ct);
        }

        var bytes = TestModels.Bytes("skl2onnx_logreg_iris.onnx");
        var first = await Database.DataSource.ScalarAsync<int>("SELECT mad.push_model(@model, @bytes, '{\"by\":\"sql\"}')", new { model, bytes });
        var second = await Database.DataSource.ScalarAsync<int>("SELECT mad.push_model(@model, @bytes)", new { model, bytes });
        using var wait = CancellationTokenSource.CreateLinkedTokenSource(Ct);
        wait.CancelAfter(TimeSpan.FromSeconds(10));
        while (received.Count < 2)
        {
            await listener.WaitAsync(wait.Token);
        }

        Assert.Equal((1, 2), (first, second));
        Assert.Equal($$"""{"event" : "pushed", "model" : "{{model}}", "version" : 1}""", received[0]);
        var stored = await Registry.ResolveAsync(ModelReference.Parse($"{model}@1"), Ct);
        Assert.Equal("sql", (string?)stored.Metadata["by"]);
        Assert.Equal(VersionStatus.Pending, stored.Status);
    }

    [Fact(Timeout = 90_000)]
    public async Task Concurrent_pushes_of_one_model_get_distinct_versions()
    {
        var model = Sql.UniqueName("race");
        var bytes = TestModels.Bytes("skl2onnx_logreg_iris.onnx");

        var versions = await Task.WhenAll(Enumerable.Range(0, 8).Select(_ => Task.Run(() => Registry.PushAsync(model, bytes, [], Ct))));

        Assert.Equal(Enumerable.Range(1, 8), versions.Select(v => v.Version).Order());
    }

    [Fact(Timeout = 90_000)]
    public async Task A_blob_over_the_size_limit_is_refused_with_the_limit_and_how_to_raise_it()
    {
        var model = Sql.UniqueName("big");
        await Database.DataSource.ExecuteAsync("UPDATE mad.settings SET value = '1000' WHERE name = 'max_model_bytes'");
        try
        {
            var error = await Assert.ThrowsAsync<ModelAsDataException>(() => Registry.PushAsync(model, new byte[1001], [], Ct));

            Assert.Equal(ErrorCode.InvalidModel, error.Code);
            Assert.Contains("1001 bytes; the limit is 1000 bytes", error.Message, StringComparison.Ordinal);
            Assert.Contains("max_model_bytes", error.Message, StringComparison.Ordinal);
            Assert.Equal(0, await Database.DataSource.ScalarAsync<int>("SELECT count(*) FROM mad.models WHERE name = @model", new { model }));
        }
        finally
        {
            await Database.DataSource.ExecuteAsync("UPDATE mad.settings SET value = '268435456' WHERE name = 'max_model_bytes'");
        }
    }

    [Fact(Timeout = 90_000)]
    public async Task An_empty_blob_or_metadata_that_is_not_an_object_is_refused()
    {
        var empty = await Assert.ThrowsAsync<ModelAsDataException>(() => Registry.PushAsync(Sql.UniqueName("empty"), [], [], Ct));
        var metadata = await Database.DataSource.FailsAsync("SELECT mad.push_model('meta', '\\x01', '[1, 2]')");

        Assert.Equal(ErrorCode.InvalidArgument, empty.Code);
        Assert.Contains("empty", empty.Message, StringComparison.Ordinal);
        Assert.Equal(PostgresErrorCodes.InvalidParameterValue, metadata.SqlState);
        Assert.Contains("JSON object", metadata.MessageText, StringComparison.Ordinal);
    }

    [Theory(Timeout = 90_000)]
    [InlineData("x'; DROP TABLE mad.models; --")]
    [InlineData("churn\"); DELETE FROM mad.aliases; --")]
    [InlineData("Churn")]
    [InlineData("two words")]
    [InlineData("9lives")]
    [InlineData("iris\n")]
    [InlineData("")]
    [InlineData("a_name_that_is_far_too_long_to_be_a_postgresql_identifier_at_all_x")]
    public async Task Names_that_are_not_lower_case_identifiers_are_refused_before_any_statement_uses_them(string name)
    {
        var push = await Assert.ThrowsAsync<ModelAsDataException>(() => Registry.PushAsync(name, [1, 2, 3], [], Ct));
        var alias = await Database.DataSource.FailsAsync("SELECT mad.set_alias('churn', @name, 1)", new { name });
        var reference = await Assert.ThrowsAsync<ModelAsDataException>(() => Registry.AliasAtAsync("churn", name, DateTimeOffset.UtcNow, Ct));

        Assert.Equal(ErrorCode.InvalidName, push.Code);
        Assert.Contains("Invalid model name", push.Message, StringComparison.Ordinal);
        Assert.Contains("lower-case letters", push.Message, StringComparison.Ordinal);
        Assert.Equal(PostgresErrorCodes.InvalidName, alias.SqlState);
        Assert.Equal(ErrorCode.InvalidName, reference.Code);
        Assert.NotNull(await Database.DataSource.ScalarAsync<string?>("SELECT to_regclass('mad.models')::text"));
        Assert.NotNull(await Database.DataSource.ScalarAsync<string?>("SELECT to_regclass('mad.aliases')::text"));
    }
}

using System.Security.Cryptography;
using System.Text.Json.Nodes;
using ModelAsData.Core;
using ModelAsData.Core.Registry;
using ModelAsData.Sqlite;

namespace ModelAsData.Tests.Sqlite;

public sealed class SqliteModelRegistryTests
{
    private const string RandomForest = "skl2onnx_rf_iris.onnx";
    private const string LogisticRegression = "skl2onnx_logreg_iris.onnx";

    [Fact]
    public async Task Push_stores_a_ready_version_with_sha256_size_signature_and_metadata()
    {
        await using var db = await TempDatabase.CreateAsync();
        var bytes = TestModels.ExternalBytes(RandomForest);
        var version = await db.Registry.PushAsync("iris", bytes, new JsonObject { ["trained_on"] = "2026-11", ["rows"] = 150 });

        Assert.Equal("iris", version.Model);
        Assert.Equal(1, version.Version);
        Assert.Equal(VersionStatus.Ready, version.Status);
        Assert.Null(version.Reason);
        Assert.Equal("11646bde97b0b0f9f6aa34db4496800477784cf9cea39c8c726cab918a0ed4f2", version.Sha256);
        Assert.Equal(61224, version.SizeBytes);
        Assert.Equal("2026-11", (string?)version.Metadata["trained_on"]);
        Assert.Equal(150, (int?)version.Metadata["rows"]);
        Assert.Equal(Environment.UserName, version.CreatedBy);
        Assert.InRange(version.CreatedAt, DateTimeOffset.UtcNow.AddMinutes(-1), DateTimeOffset.UtcNow.AddSeconds(1));

        var signature = version.Signature!;
        Assert.Equal("float_input float[-1,4]", signature.DescribeInputs());
        Assert.Equal(["output_label", "output_probability"], signature.Outputs.Select(o => o.Name));
        Assert.Equal(["label", "probability_0", "probability_1", "probability_2"], signature.Columns.Select(c => c.Name));
        Assert.Equal(bytes, await db.Registry.LoadBytesAsync("iris", 1));
    }

    [Fact]
    public async Task List_of_an_empty_registry_is_empty()
    {
        await using var db = await TempDatabase.CreateAsync();
        Assert.Empty(await db.Registry.ListAsync());
        await db.PushAsync("iris", RandomForest);
        Assert.Equal(["iris"], (await db.Registry.ListAsync()).Select(m => m.Model));
    }

    [Fact]
    public async Task Versions_increment_per_model()
    {
        await using var db = await TempDatabase.CreateAsync();
        Assert.Equal(1, (await db.PushAsync("iris", RandomForest)).Version);
        Assert.Equal(2, (await db.PushAsync("iris", LogisticRegression)).Version);
        Assert.Equal(1, (await db.PushAsync("boost", "onnxmltools_xgboost_regressor.onnx")).Version);
        Assert.Equal(3, (await db.PushAsync("iris", RandomForest)).Version);

        var models = await db.Registry.ListAsync();
        Assert.Equal(["boost", "iris"], models.Select(m => m.Model));
        var iris = models.Single(m => m.Model == "iris");
        Assert.Equal(3, iris.Versions);
        Assert.Equal(3, iris.LatestReady);
        Assert.Empty(iris.Aliases);
    }

    [Theory]
    [InlineData("truncated")]
    [InlineData("random")]
    [InlineData("custom_op")]
    [InlineData("empty")]
    public async Task Malformed_model_is_refused_with_onnx_runtimes_reason_and_nothing_is_registered(string kind)
    {
        await using var db = await TempDatabase.CreateAsync();
        await db.PushAsync("keep", LogisticRegression);
        var (bytes, reason) = kind switch
        {
            "truncated" => (TestModels.ExternalBytes(RandomForest)[..1000], "protobuf parsing failed"),
            "random" => (RandomBytes(4096), "ONNX Runtime cannot load the model"),
            "custom_op" => (TestModels.ExternalBytes("ortext_custom_op_negpos.onnx"), "No opset import for domain 'ai.onnx.contrib'"),
            _ => (Array.Empty<byte>(), "The model is empty"),
        };

        var e = await Assert.ThrowsAsync<ModelAsDataException>(() => db.Registry.PushAsync("broken", bytes, []));
        Assert.Equal(ErrorCode.InvalidModel, e.Code);
        Assert.Contains(reason, e.Message);

        Assert.Equal(["keep"], (await db.Registry.ListAsync()).Select(m => m.Model));
        Assert.Equal(0L, db.Scalar("SELECT count(*) FROM mad_models WHERE name = 'broken'"));
        Assert.Equal(1L, db.Scalar("SELECT count(*) FROM mad_model_versions"));
        await NotFoundAsync(db, "broken");
    }

    [Fact]
    public async Task Malformed_push_to_an_existing_model_adds_no_version()
    {
        await using var db = await TempDatabase.CreateAsync();
        await db.PushAsync("iris", RandomForest);
        await Assert.ThrowsAsync<ModelAsDataException>(() => db.Registry.PushAsync("iris", TestModels.ExternalBytes(RandomForest)[..300], []));
        Assert.Equal(1, (await db.Registry.ListAsync()).Single().Versions);
        Assert.Equal(2, (await db.PushAsync("iris", LogisticRegression)).Version);
    }

    [Theory]
    [InlineData("Iris")]
    [InlineData("iris; DROP TABLE mad_models")]
    [InlineData("a\"b")]
    public async Task Push_refuses_an_invalid_model_name_before_storing_anything(string name)
    {
        await using var db = await TempDatabase.CreateAsync();
        var e = await Assert.ThrowsAsync<ModelAsDataException>(() => db.PushAsync(name, RandomForest));
        Assert.Equal(ErrorCode.InvalidName, e.Code);
        Assert.Contains($"Invalid model name '{name}'", e.Message);
        Assert.Equal(0L, db.Scalar("SELECT count(*) FROM mad_models"));
    }

    [Fact]
    public async Task Bare_name_resolves_to_the_newest_ready_version_without_a_production_alias()
    {
        await using var db = await TempDatabase.CreateAsync();
        await db.PushAsync("iris", RandomForest);
        await db.PushAsync("iris", LogisticRegression);
        await db.Registry.SetAliasAsync("iris", "staging", 1);

        var resolved = await db.Registry.ResolveAsync(ModelReference.Parse("iris"));
        Assert.Equal(2, resolved.Version);
        Assert.Equal(1, (await db.Registry.ResolveAsync(ModelReference.Parse("iris@staging"))).Version);
    }

    [Fact]
    public async Task Bare_name_resolves_to_the_production_alias_when_it_exists()
    {
        await using var db = await TempDatabase.CreateAsync();
        await db.PushAsync("iris", RandomForest);
        await db.PushAsync("iris", LogisticRegression);
        await db.Registry.SetAliasAsync("iris", "production", 1);

        Assert.Equal(1, (await db.Registry.ResolveAsync(ModelReference.Parse("iris"))).Version);
        Assert.Equal(1, (await db.Registry.ResolveAsync(ModelReference.Parse("iris@production"))).Version);
        Assert.Equal(2, (await db.Registry.ResolveAsync(ModelReference.Parse("iris@2"))).Version);
    }

    [Fact]
    public async Task Alias_set_moves_and_records_who_when_from_and_to()
    {
        await using var db = await TempDatabase.CreateAsync();
        await db.PushAsync("iris", RandomForest);
        await db.PushAsync("iris", LogisticRegression);

        var created = await db.Registry.SetAliasAsync("iris", "production", 1, "first release");
        Assert.Equal(new AliasMove("iris", "production", null, 1, Environment.UserName, created.MovedAt, "first release"), created);
        var moved = await db.Registry.SetAliasAsync("iris", "production", 2);
        Assert.Equal(1, moved.From);
        Assert.Equal(2, moved.To);

        Assert.Equal(new Dictionary<string, int> { ["production"] = 2 }, await db.Registry.AliasesAsync("iris"));
        var history = await db.Registry.AliasHistoryAsync("iris", "production");
        Assert.Equal([(1, 2), ((int?)null, 1)], history.Select(h => (h.From, h.To)));
        Assert.Equal([null, "first release"], history.Select(h => h.Reason));
        Assert.True(history[0].MovedAt >= history[1].MovedAt);
    }

    [Fact]
    public async Task Alias_rollback_returns_to_the_previous_version()
    {
        await using var db = await TempDatabase.CreateAsync();
        await db.PushAsync("iris", RandomForest);
        await db.PushAsync("iris", LogisticRegression);
        await db.Registry.SetAliasAsync("iris", "production", 1);
        await db.Registry.SetAliasAsync("iris", "production", 2);

        var rollback = await db.Registry.RollbackAliasAsync("iris", "production");
        Assert.Equal((2, 1), (rollback.From, rollback.To));
        Assert.Equal("rollback of the move to version 2", rollback.Reason);
        Assert.Equal(1, (await db.Registry.ResolveAsync(ModelReference.Parse("iris"))).Version);

        var history = await db.Registry.AliasHistoryAsync("iris", "production");
        Assert.Equal([(2, 1), (1, 2), ((int?)null, 1)], history.Select(h => (h.From, h.To)));
    }

    [Fact]
    public async Task Rollback_of_an_alias_that_never_moved_is_a_conflict()
    {
        await using var db = await TempDatabase.CreateAsync();
        await db.PushAsync("iris", RandomForest);
        await db.Registry.SetAliasAsync("iris", "production", 1);
        var e = await Assert.ThrowsAsync<ModelAsDataException>(() => db.Registry.RollbackAliasAsync("iris", "production"));
        Assert.Equal(ErrorCode.Conflict, e.Code);
        Assert.Contains("iris@production has pointed only at version 1", e.Message);
    }

    [Fact]
    public async Task Rollback_of_an_unknown_alias_or_model_is_not_found()
    {
        await using var db = await TempDatabase.CreateAsync();
        await db.PushAsync("iris", RandomForest);
        var alias = await Assert.ThrowsAsync<ModelAsDataException>(() => db.Registry.RollbackAliasAsync("iris", "staging"));
        Assert.Equal(ErrorCode.NotFound, alias.Code);
        Assert.Contains("Model 'iris' has no alias 'staging' to roll back", alias.Message);
        var model = await Assert.ThrowsAsync<ModelAsDataException>(() => db.Registry.RollbackAliasAsync("churn", "production"));
        Assert.Equal(ErrorCode.NotFound, model.Code);
        Assert.Contains("Model 'churn' does not exist", model.Message);
    }

    [Fact]
    public async Task Alias_at_gives_the_version_an_alias_pointed_at_then()
    {
        await using var db = await TempDatabase.CreateAsync();
        await db.PushAsync("iris", RandomForest);
        await db.PushAsync("iris", LogisticRegression);
        var before = DateTimeOffset.UtcNow.AddSeconds(-1);
        var first = await db.Registry.SetAliasAsync("iris", "production", 1);
        await Task.Delay(5);
        var second = await db.Registry.SetAliasAsync("iris", "production", 2);

        Assert.Null(await db.Registry.AliasAtAsync("iris", "production", before));
        Assert.Equal(1, await db.Registry.AliasAtAsync("iris", "production", first.MovedAt));
        Assert.Equal(1, await db.Registry.AliasAtAsync("iris", "production", second.MovedAt.AddTicks(-10)));
        Assert.Equal(2, await db.Registry.AliasAtAsync("iris", "production", second.MovedAt));
        Assert.Equal(2, await db.Registry.AliasAtAsync("iris", "production", DateTimeOffset.UtcNow.AddDays(1)));
        Assert.Null(await db.Registry.AliasAtAsync("iris", "staging", DateTimeOffset.UtcNow));
    }

    [Fact]
    public async Task Unknown_model_names_the_models_that_exist()
    {
        await using var db = await TempDatabase.CreateAsync();
        await db.PushAsync("iris", RandomForest);
        await db.PushAsync("boost", "onnxmltools_xgboost_regressor.onnx");
        var e = await NotFoundAsync(db, "churn");
        Assert.Equal("Model 'churn' does not exist; the models are 'boost', 'iris'.", e.Message);
    }

    [Fact]
    public async Task Unknown_model_in_an_empty_registry_says_it_is_empty()
    {
        await using var db = await TempDatabase.CreateAsync();
        var e = await NotFoundAsync(db, "churn@production");
        Assert.Contains("there are no models yet", e.Message);
    }

    [Fact]
    public async Task Unknown_alias_names_the_aliases_that_exist()
    {
        await using var db = await TempDatabase.CreateAsync();
        await db.PushAsync("iris", RandomForest);
        await db.PushAsync("iris", LogisticRegression);
        var none = await NotFoundAsync(db, "iris@staging");
        Assert.Contains("Model 'iris' has no alias 'staging'; it has no aliases.", none.Message);

        await db.Registry.SetAliasAsync("iris", "production", 2);
        await db.Registry.SetAliasAsync("iris", "canary", 1);
        var some = await NotFoundAsync(db, "iris@staging");
        Assert.Contains("its aliases are canary -> 1, production -> 2", some.Message);
    }

    [Fact]
    public async Task Unknown_version_names_the_versions_that_exist()
    {
        await using var db = await TempDatabase.CreateAsync();
        await db.PushAsync("iris", RandomForest);
        await db.PushAsync("iris", LogisticRegression);
        var e = await NotFoundAsync(db, "iris@7");
        Assert.Equal("Model 'iris' has no version 7; its versions are 1 (ready), 2 (ready).", e.Message);
        var alias = await Assert.ThrowsAsync<ModelAsDataException>(() => db.Registry.SetAliasAsync("iris", "production", 9));
        Assert.Equal("Model 'iris' has no version 9; its versions are 1 (ready), 2 (ready).", alias.Message);
        var bytes = await Assert.ThrowsAsync<ModelAsDataException>(() => db.Registry.LoadBytesAsync("iris", 3));
        Assert.Equal(ErrorCode.NotFound, bytes.Code);
    }

    [Theory]
    [InlineData("Production")]
    [InlineData("prod; DROP TABLE mad_aliases")]
    [InlineData("7")]
    public async Task Set_alias_refuses_an_invalid_alias_name(string alias)
    {
        await using var db = await TempDatabase.CreateAsync();
        await db.PushAsync("iris", RandomForest);
        var e = await Assert.ThrowsAsync<ModelAsDataException>(() => db.Registry.SetAliasAsync("iris", alias, 1));
        Assert.Equal(ErrorCode.InvalidName, e.Code);
        Assert.Empty(await db.Registry.AliasesAsync("iris"));
    }

    [Fact]
    public async Task Migrations_are_idempotent_when_the_file_is_opened_twice()
    {
        await using var db = await TempDatabase.CreateAsync();
        await db.PushAsync("iris", RandomForest);
        var applied = db.Rows("SELECT name, checksum, applied_at FROM mad_schema_migrations ORDER BY name");
        Assert.Equal(["001_registry.sql", "002_prediction_tables.sql", "005_drift.sql"], applied.Select(r => (string)r["name"]!));

        await using (var again = await SqliteModelRegistry.OpenAsync(db.Path))
        {
            await again.MigrateAsync();
            Assert.Equal(1, (await again.ResolveAsync(ModelReference.Parse("iris"))).Version);
        }

        await db.Registry.MigrateAsync();
        var after = db.Rows("SELECT name, checksum, applied_at FROM mad_schema_migrations ORDER BY name");
        Assert.Equal(applied.Select(r => string.Join('|', r.Values)), after.Select(r => string.Join('|', r.Values)));
    }

    [Fact]
    public async Task A_changed_applied_migration_is_refused()
    {
        await using var db = await TempDatabase.CreateAsync();
        db.Execute("UPDATE mad_schema_migrations SET checksum = 'abcdef0123456789abcdef' WHERE name = '001_registry.sql'");
        var e = await Assert.ThrowsAsync<ModelAsDataException>(() => db.Registry.MigrateAsync());
        Assert.Equal(ErrorCode.Conflict, e.Code);
        Assert.Contains("Migration 001_registry.sql was applied with checksum abcdef012345", e.Message);
    }

    [Fact]
    public async Task Two_registries_on_the_same_file_see_each_others_versions_and_aliases()
    {
        await using var db = await TempDatabase.CreateAsync();
        var other = await db.OpenAnotherAsync();

        Assert.Equal(1, (await db.PushAsync("iris", RandomForest)).Version);
        Assert.Equal(2, (await other.PushAsync("iris", TestModels.ExternalBytes(LogisticRegression), [])).Version);
        Assert.Equal(3, (await db.PushAsync("iris", RandomForest)).Version);

        await other.SetAliasAsync("iris", "production", 2);
        Assert.Equal(2, (await db.Registry.ResolveAsync(ModelReference.Parse("iris"))).Version);
        await db.Registry.SetAliasAsync("iris", "production", 3);
        Assert.Equal(3, (await other.ResolveAsync(ModelReference.Parse("iris"))).Version);
        Assert.Equal(3, (await other.RollbackAliasAsync("iris", "production")).From);
        Assert.Equal(2, (await db.Registry.ResolveAsync(ModelReference.Parse("iris@production"))).Version);
    }

    [Fact]
    public async Task Concurrent_pushes_from_two_registries_get_distinct_versions()
    {
        await using var db = await TempDatabase.CreateAsync();
        var other = await db.OpenAnotherAsync();
        var bytes = TestModels.ExternalBytes(LogisticRegression);
        var pushes = await Task.WhenAll(
            Task.Run(async () => { var v = new List<int>(); for (var i = 0; i < 5; i++) { v.Add((await db.Registry.PushAsync("iris", bytes, [])).Version); } return v; }),
            Task.Run(async () => { var v = new List<int>(); for (var i = 0; i < 5; i++) { v.Add((await other.PushAsync("iris", bytes, [])).Version); } return v; }));
        Assert.Equal(Enumerable.Range(1, 10), pushes.SelectMany(v => v).Order());
        Assert.Equal(Convert.ToHexStringLower(SHA256.HashData(bytes)), (await db.Registry.ResolveAsync(ModelReference.Parse("iris@10"))).Sha256);
    }

    private static byte[] RandomBytes(int length)
    {
        var bytes = new byte[length];
        new Random(42).NextBytes(bytes);
        return bytes;
    }

    /// <summary>Resolving the reference fails with NotFound; the error is returned for its message.</summary>
    private static async Task<ModelAsDataException> NotFoundAsync(TempDatabase db, string reference)
    {
        var e = await Assert.ThrowsAsync<ModelAsDataException>(() => db.Registry.ResolveAsync(ModelReference.Parse(reference)));
        Assert.Equal(ErrorCode.NotFound, e.Code);
        return e;
    }
}

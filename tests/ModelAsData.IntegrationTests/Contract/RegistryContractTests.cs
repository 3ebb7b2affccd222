using System.Text.Json.Nodes;

namespace ModelAsData.IntegrationTests.Contract;

/// <summary>
/// What every <see cref="IModelRegistry"/> must do, whatever the store: one subclass per store (as Dapper's
/// <c>TestBase</c> with a provider per database). Stores differ in when a version becomes ready: SQLite validates
/// in-process and returns it ready; PostgreSQL returns it pending until a sidecar validates it. Tests therefore get
/// ready versions through <see cref="PushReadyAsync"/>, which each store implements its own way. Model names are
/// unique per test, so a store may share one database between tests.
/// </summary>
public abstract class RegistryContractTests : StoreContractTests
{
    /// <summary>
    /// What migrating must leave alone, as text to compare: the journal of applied migrations (name, checksum, when),
    /// and whatever else the store keeps about its schema (PostgreSQL: the grants on its objects).
    /// </summary>
    protected abstract Task<string> MigrationStateAsync();

    /// <summary>The store's word for itself in <see cref="IModelRegistry.Kind"/>.</summary>
    protected abstract string ExpectedKind { get; }

    private static byte[] Iris => TestModels.Bytes("skl2onnx_logreg_iris.onnx");

    [Fact]
    public void Kind_names_the_store() => Assert.Equal(ExpectedKind, Registry.Kind);

    [Fact(Timeout = 90_000)]
    public async Task Migrating_again_is_harmless()
    {
        var model = Sql.UniqueName("kept");
        var version = await PushReadyAsync(model, Iris);
        await Registry.SetAliasAsync(model, "staging", version.Version, cancellationToken: Ct);
        var before = await MigrationStateAsync();

        await Registry.MigrateAsync(Ct);
        await Registry.MigrateAsync(Ct);

        // The journal (names, checksums and when each was applied) is unchanged: nothing was applied again.
        Assert.Equal(before, await MigrationStateAsync());
        Assert.Contains("001_", before, StringComparison.Ordinal);
        Assert.Equal(version.Version, (await Registry.ResolveAsync(ModelReference.Parse($"{model}@staging"), Ct)).Version);
        Assert.Equal(Iris, await Registry.LoadBytesAsync(model, version.Version, Ct));
    }

    [Fact(Timeout = 90_000)]
    public async Task Versions_are_numbered_per_model_from_one()
    {
        var a = Sql.UniqueName("a");
        var b = Sql.UniqueName("b");

        var versions = new[] { await PushReadyAsync(a, Iris), await PushReadyAsync(a, Iris), await PushReadyAsync(b, Iris) };

        Assert.Equal([1, 2, 1], versions.Select(v => v.Version));
        Assert.All(versions, v => Assert.Equal(VersionStatus.Ready, v.Status));
    }

    [Fact(Timeout = 90_000)]
    public async Task A_ready_version_has_its_signature_hash_size_and_metadata()
    {
        var model = Sql.UniqueName("iris");

        var version = await PushReadyAsync(model, Iris, new JsonObject { ["trained_on"] = "2026-11", ["auc"] = 0.91 });

        Assert.Equal(model, version.Model);
        Assert.Equal(Iris.Length, version.SizeBytes);
        Assert.Equal(Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(Iris)), version.Sha256);
        Assert.Equal("X", Assert.Single(version.Signature!.Inputs).Name);
        Assert.Equal("2026-11", (string?)version.Metadata["trained_on"]);
        Assert.Equal(0.91, (double?)version.Metadata["auc"]);
        Assert.Null(version.Reason);
    }

    [Fact(Timeout = 90_000)]
    public async Task Load_bytes_returns_exactly_what_was_pushed()
    {
        var model = Sql.UniqueName("iris");
        var version = await PushReadyAsync(model, Iris);

        Assert.Equal(Iris, await Registry.LoadBytesAsync(model, version.Version, Ct));
    }

    [Fact(Timeout = 90_000)]
    public async Task A_reference_resolves_by_number_by_alias_and_bare_name()
    {
        var model = Sql.UniqueName("churn");
        await PushReadyAsync(model, Iris);
        await PushReadyAsync(model, Iris);
        await PushReadyAsync(model, Iris);

        Assert.Equal(3, (await Registry.ResolveAsync(ModelReference.Parse(model), Ct)).Version); // newest ready
        await Registry.SetAliasAsync(model, "staging", 2, cancellationToken: Ct);
        Assert.Equal(2, (await Registry.ResolveAsync(ModelReference.Parse($"{model}@staging"), Ct)).Version);
        Assert.Equal(1, (await Registry.ResolveAsync(ModelReference.Parse($"{model}@1"), Ct)).Version);
        Assert.Equal(3, (await Registry.ResolveAsync(ModelReference.Parse(model), Ct)).Version); // staging is not production
        await Registry.SetAliasAsync(model, ModelReference.DefaultAlias, 1, cancellationToken: Ct);
        Assert.Equal(1, (await Registry.ResolveAsync(ModelReference.Parse(model), Ct)).Version); // production wins
    }

    [Fact(Timeout = 90_000)]
    public async Task List_shows_each_model_with_its_versions_newest_ready_and_aliases()
    {
        var model = Sql.UniqueName("listed");
        await PushReadyAsync(model, Iris);
        await PushReadyAsync(model, Iris);
        await Registry.SetAliasAsync(model, "production", 1, cancellationToken: Ct);

        var summary = Assert.Single(await Registry.ListAsync(Ct), m => m.Model == model);

        Assert.Equal(2, summary.Versions);
        Assert.Equal(2, summary.LatestReady);
        Assert.Equal(new Dictionary<string, int> { ["production"] = 1 }, summary.Aliases);
        Assert.InRange(summary.UpdatedAt, DateTimeOffset.UtcNow.AddMinutes(-5), DateTimeOffset.UtcNow.AddMinutes(5));
    }

    [Fact(Timeout = 90_000)]
    public async Task Moving_an_alias_records_the_move_and_rollback_returns_to_the_previous_version()
    {
        var model = Sql.UniqueName("churn");
        await PushReadyAsync(model, Iris);
        await PushReadyAsync(model, Iris);

        var created = await Registry.SetAliasAsync(model, "production", 1, "first", Ct);
        var moved = await Registry.SetAliasAsync(model, "production", 2, "second", Ct);
        var back = await Registry.RollbackAliasAsync(model, "production", Ct);

        Assert.Equal((model, "production", (int?)null, 1, "first"), (created.Model, created.Alias, created.From, created.To, created.Reason));
        Assert.Equal(((int?)1, 2), (moved.From, moved.To));
        Assert.Equal(((int?)2, 1), (back.From, back.To));
        Assert.Equal(new Dictionary<string, int> { ["production"] = 1 }, await Registry.AliasesAsync(model, Ct));
        Assert.Equal([back.To, moved.To, created.To], (await Registry.AliasHistoryAsync(model, "production", Ct)).Select(m => m.To));
        Assert.False(string.IsNullOrEmpty(back.MovedBy));
    }

    [Fact(Timeout = 90_000)]
    public async Task Alias_at_is_null_before_the_alias_existed_and_follows_its_moves()
    {
        var model = Sql.UniqueName("churn");
        await PushReadyAsync(model, Iris);
        await PushReadyAsync(model, Iris);
        var first = await Registry.SetAliasAsync(model, "production", 1, cancellationToken: Ct);
        await Task.Delay(20, Ct);
        var second = await Registry.SetAliasAsync(model, "production", 2, cancellationToken: Ct);

        Assert.Null(await Registry.AliasAtAsync(model, "production", first.MovedAt.AddSeconds(-1), Ct));
        Assert.Equal(1, await Registry.AliasAtAsync(model, "production", first.MovedAt, Ct));
        Assert.Equal(2, await Registry.AliasAtAsync(model, "production", second.MovedAt.AddSeconds(1), Ct));
    }

    [Fact(Timeout = 90_000)]
    public async Task A_missing_model_is_not_found_and_the_message_names_the_models_that_exist()
    {
        var existing = Sql.UniqueName("existing");
        await PushReadyAsync(existing, Iris);

        var error = await Assert.ThrowsAsync<ModelAsDataException>(() => Registry.ResolveAsync(ModelReference.Parse("no_such_model"), Ct));

        Assert.Equal(ErrorCode.NotFound, error.Code);
        Assert.Contains("no_such_model", error.Message, StringComparison.Ordinal);
        Assert.Contains(existing, error.Message, StringComparison.Ordinal);
    }

    [Fact(Timeout = 90_000)]
    public async Task An_unknown_alias_or_version_is_not_found_and_the_message_names_what_exists()
    {
        var model = Sql.UniqueName("churn");
        await PushReadyAsync(model, Iris);
        await Registry.SetAliasAsync(model, "production", 1, cancellationToken: Ct);

        var alias = await Assert.ThrowsAsync<ModelAsDataException>(() => Registry.ResolveAsync(ModelReference.Parse($"{model}@canary"), Ct));
        var version = await Assert.ThrowsAsync<ModelAsDataException>(() => Registry.ResolveAsync(ModelReference.Parse($"{model}@5"), Ct));

        Assert.Equal(ErrorCode.NotFound, alias.Code);
        Assert.Contains("canary", alias.Message, StringComparison.Ordinal);
        Assert.Contains("production", alias.Message, StringComparison.Ordinal);
        Assert.Equal(ErrorCode.NotFound, version.Code);
        Assert.Contains("5", version.Message, StringComparison.Ordinal);
    }

    [Fact(Timeout = 90_000)]
    public async Task An_alias_to_a_version_that_does_not_exist_is_refused()
    {
        var model = Sql.UniqueName("churn");
        await PushReadyAsync(model, Iris);

        var error = await Assert.ThrowsAsync<ModelAsDataException>(() => Registry.SetAliasAsync(model, "production", 2, cancellationToken: Ct));

        Assert.Equal(ErrorCode.NotFound, error.Code);
        Assert.Empty(await Registry.AliasesAsync(model, Ct));
        var noModel = await Assert.ThrowsAsync<ModelAsDataException>(() => Registry.AliasesAsync(Sql.UniqueName("nosuch"), Ct));
        Assert.Equal(ErrorCode.NotFound, noModel.Code);
    }

    [Fact(Timeout = 90_000)]
    public async Task Rolling_back_an_alias_that_never_moved_is_a_conflict()
    {
        var model = Sql.UniqueName("churn");
        await PushReadyAsync(model, Iris);
        await Registry.SetAliasAsync(model, "production", 1, cancellationToken: Ct);

        var error = await Assert.ThrowsAsync<ModelAsDataException>(() => Registry.RollbackAliasAsync(model, "production", Ct));

        Assert.Equal(ErrorCode.Conflict, error.Code);
    }

    [Theory(Timeout = 90_000)]
    [InlineData("Churn")]
    [InlineData("churn; DROP TABLE x")]
    [InlineData("chürn")]
    [InlineData("")]
    public async Task Invalid_model_names_are_refused(string name)
    {
        var error = await Assert.ThrowsAsync<ModelAsDataException>(() => Registry.PushAsync(name, Iris, [], Ct));

        Assert.Equal(ErrorCode.InvalidName, error.Code);
    }

    [Fact(Timeout = 90_000)]
    public async Task Invalid_alias_names_are_refused()
    {
        var model = Sql.UniqueName("churn");
        await PushReadyAsync(model, Iris);

        var error = await Assert.ThrowsAsync<ModelAsDataException>(() => Registry.SetAliasAsync(model, "Prod'uction", 1, cancellationToken: Ct));

        Assert.Equal(ErrorCode.InvalidName, error.Code);
    }
}

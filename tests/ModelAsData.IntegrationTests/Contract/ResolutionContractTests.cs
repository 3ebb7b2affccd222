namespace ModelAsData.IntegrationTests.Contract;

/// <summary>
/// Reference resolution, written twice (PostgreSQL's mad.resolve and mad.resolve_reference; SQLite's
/// <c>SqliteModelRegistry.ResolveAsync</c> with <see cref="ModelReference.Parse"/>), held together here: the same cases
/// on both stores, the same result, the same <see cref="ErrorCode"/> and word for word the same message. PostgreSQL's
/// text is the authority; a change to it changes the C# side too.
/// </summary>
public abstract class ResolutionContractTests(RulesStore store) : IAsyncLifetime
{
    private static byte[] Iris => TestModels.Bytes("skl2onnx_logreg_iris.onnx");

    private IModelRegistry Registry => store.Registry;

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    public async ValueTask InitializeAsync()
    {
        await store.OpenEmptyAsync();
        await store.ExecuteAsync("CREATE TABLE flowers (id integer PRIMARY KEY, sepal_length real, sepal_width real, petal_length real, petal_width real)");
    }

    public async ValueTask DisposeAsync()
    {
        await store.DisposeAsync();
        GC.SuppressFinalize(this);
    }

    [Fact(Timeout = 90_000)]
    public async Task A_bare_name_is_the_newest_ready_version_until_production_exists()
    {
        await PushReadyAsync("churn", 3);
        await store.PushPendingAsync("churn", Iris);

        Assert.Equal(3, await VersionOfAsync("churn"));
        await Registry.SetAliasAsync("churn", "staging", 2, cancellationToken: Ct);
        Assert.Equal(3, await VersionOfAsync("churn"));
        await Registry.SetAliasAsync("churn", "production", 1, cancellationToken: Ct);
        Assert.Equal(1, await VersionOfAsync("churn"));
    }

    [Fact(Timeout = 90_000)]
    public async Task An_alias_or_a_version_number_names_its_version()
    {
        await PushReadyAsync("churn", 3);
        await Registry.SetAliasAsync("churn", "staging", 2, cancellationToken: Ct);

        Assert.Equal(2, await VersionOfAsync("churn@staging"));
        Assert.Equal(1, await VersionOfAsync("churn@1"));
        Assert.Equal(3, await VersionOfAsync("churn@003"));
    }

    [Fact(Timeout = 90_000)]
    public async Task A_missing_model_names_the_models_there_are()
    {
        var empty = await FailsAsync("churn");
        await PushReadyAsync("iris", 1);
        await PushReadyAsync("boost", 1);

        Assert.Equal((ErrorCode.NotFound, "Model 'churn' does not exist; there are no models yet: push one with mad.push_model or `mad models push`."), empty);
        Assert.Equal((ErrorCode.NotFound, "Model 'churn' does not exist; the models are 'boost', 'iris'."), await FailsAsync("churn"));
        Assert.Equal((ErrorCode.NotFound, "Model 'churn' does not exist; the models are 'boost', 'iris'."), await FailsAsync("churn@production"));
        Assert.Equal((ErrorCode.NotFound, "Model 'churn' does not exist; the models are 'boost', 'iris'."), await FailsAsync("churn@1"));
    }

    [Fact(Timeout = 90_000)]
    public async Task A_missing_alias_names_the_aliases_there_are()
    {
        await PushReadyAsync("churn", 2);
        var none = await FailsAsync("churn@canary");
        await Registry.SetAliasAsync("churn", "staging", 2, cancellationToken: Ct);
        await Registry.SetAliasAsync("churn", "production", 1, cancellationToken: Ct);

        Assert.Equal((ErrorCode.NotFound, "Model 'churn' has no alias 'canary'; it has no aliases."), none);
        Assert.Equal((ErrorCode.NotFound, "Model 'churn' has no alias 'canary'; its aliases are production -> 1, staging -> 2."), await FailsAsync("churn@canary"));
    }

    [Fact(Timeout = 90_000)]
    public async Task A_missing_version_names_the_versions_there_are_with_their_status()
    {
        await PushReadyAsync("churn", 1);
        await store.PushPendingAsync("churn", Iris);

        Assert.Equal((ErrorCode.NotFound, "Model 'churn' has no version 5; its versions are 1 (ready), 2 (pending)."), await FailsAsync("churn@5"));
        Assert.Equal((ErrorCode.NotFound, "Model 'churn' has no version 0; its versions are 1 (ready), 2 (pending)."), await FailsAsync("churn@0"));
    }

    [Fact(Timeout = 90_000)]
    public async Task A_pending_or_rejected_version_resolves_by_number_but_never_by_bare_name()
    {
        var pending = await store.PushPendingAsync("churn", Iris);
        var rejected = await store.PushPendingAsync("churn", Iris);
        await store.RejectAsync("churn", rejected, "ONNX Runtime cannot load it");

        Assert.Equal(VersionStatus.Pending, (await Registry.ResolveAsync(ModelReference.Parse($"churn@{pending}"), Ct)).Status);
        var refused = await Registry.ResolveAsync(ModelReference.Parse($"churn@{rejected}"), Ct);
        Assert.Equal((VersionStatus.Rejected, "ONNX Runtime cannot load it"), (refused.Status, refused.Reason));
        Assert.Equal((ErrorCode.NotReady, "Model 'churn' has no ready version yet; its versions are 1 (pending), 2 (rejected). A running sidecar (`mad serve`) validates pending versions."),
            await FailsAsync("churn"));
    }

    [Fact(Timeout = 90_000)]
    public async Task An_alias_cannot_point_at_a_pending_or_rejected_version()
    {
        await ReadyPendingAndRejectedChurnAsync();

        Assert.Equal((ErrorCode.NotReady,
                "Cannot point churn@production at version 2: it is pending, and an alias can only point at a ready version. A running sidecar (`mad serve`) validates pending versions; try again once it is ready."),
            await FailsAsync(() => Registry.SetAliasAsync("churn", "production", 2, cancellationToken: Ct)));
        Assert.Equal((ErrorCode.NotReady,
                "Cannot point churn@production at version 3: it was rejected (ONNX Runtime cannot load it), and an alias can only point at a ready version. Push a model ONNX Runtime can load, then point the alias at its version."),
            await FailsAsync(() => Registry.SetAliasAsync("churn", "production", 3, cancellationToken: Ct)));
        Assert.Equal((ErrorCode.NotFound, "Model 'churn' has no version 4; its versions are 1 (ready), 2 (pending), 3 (rejected)."),
            await FailsAsync(() => Registry.SetAliasAsync("churn", "production", 4, cancellationToken: Ct)));
    }

    [Fact(Timeout = 90_000)]
    public async Task A_pending_or_rejected_version_cannot_be_bound_to_a_table()
    {
        await ReadyPendingAndRejectedChurnAsync();

        Assert.Equal((ErrorCode.NotReady, "Model churn@2 is pending: only a ready version can score. A running sidecar (`mad serve`) validates pending versions."),
            await BindFailsAsync("churn@2"));
        Assert.Equal((ErrorCode.NotReady, "Model churn@3 is rejected: only a ready version can score. A running sidecar (`mad serve`) validates pending versions."),
            await BindFailsAsync("churn@3"));
    }

    /// <summary>Through a table binding, where PostgreSQL parses the reference in SQL (mad.resolve_reference) and SQLite in C#.</summary>
    [Theory(Timeout = 90_000)]
    [InlineData("", "A model reference is empty: write 'name', 'name@alias' or 'name@version'.")]
    [InlineData("Churn", "Invalid model name 'Churn': use lower-case letters, digits and '_', starting with a letter or '_', at most 63 characters.")]
    [InlineData("   ", "Invalid model name '   ': use lower-case letters, digits and '_', starting with a letter or '_', at most 63 characters.")]
    [InlineData("@production", "Invalid model name '': use lower-case letters, digits and '_', starting with a letter or '_', at most 63 characters.")]
    [InlineData("churn@", "Invalid alias name '': use lower-case letters, digits and '_', starting with a letter or '_', at most 63 characters.")]
    [InlineData("churn@Prod", "Invalid alias name 'Prod': use lower-case letters, digits and '_', starting with a letter or '_', at most 63 characters.")]
    [InlineData("churn@a@b", "Invalid alias name 'a@b': use lower-case letters, digits and '_', starting with a letter or '_', at most 63 characters.")]
    [InlineData("churn@-1", "Invalid alias name '-1': use lower-case letters, digits and '_', starting with a letter or '_', at most 63 characters.")]
    [InlineData("churn@1234567890", "Invalid alias name '1234567890': use lower-case letters, digits and '_', starting with a letter or '_', at most 63 characters.")]
    [InlineData("churn; DROP TABLE flowers", "Invalid model name 'churn; DROP TABLE flowers': use lower-case letters, digits and '_', starting with a letter or '_', at most 63 characters.")]
    public async Task A_malformed_reference_is_an_invalid_name(string reference, string message)
    {
        await PushReadyAsync("churn", 1);

        Assert.Equal((ErrorCode.InvalidName, message), await BindFailsAsync(reference));
    }

    private async Task PushReadyAsync(string model, int versions)
    {
        for (var i = 0; i < versions; i++)
        {
            await store.PushReadyAsync(model, Iris);
        }
    }

    /// <summary>churn@1 ready, churn@2 pending and churn@3 rejected (ONNX Runtime cannot load it).</summary>
    private async Task ReadyPendingAndRejectedChurnAsync()
    {
        await PushReadyAsync("churn", 1);
        await store.PushPendingAsync("churn", Iris);
        await store.PushPendingAsync("churn", Iris);
        await store.RejectAsync("churn", 3, "ONNX Runtime cannot load it");
    }

    private async Task<int> VersionOfAsync(string reference) => (await Registry.ResolveAsync(ModelReference.Parse(reference), Ct)).Version;

    private Task<(ErrorCode, string)> FailsAsync(string reference) => FailsAsync(() => Registry.ResolveAsync(ModelReference.Parse(reference), Ct));

    private Task<(ErrorCode, string)> BindFailsAsync(string reference) => FailsAsync(() =>
        store.Tables.CreateAsync(new PredictionTableSpec(Sql.UniqueName("scores"), "flowers", ["id"], reference, new() { ["X"] = new System.Text.Json.Nodes.JsonArray("sepal_length", "sepal_width") }), Ct));

    private static async Task<(ErrorCode, string)> FailsAsync(Func<Task> action)
    {
        var error = await Assert.ThrowsAsync<ModelAsDataException>(action);
        return (error.Code, error.Message);
    }
}

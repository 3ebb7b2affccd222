using System.Text.Json.Nodes;
using ModelAsData.Core.Onnx;
using ModelAsData.Sidecar.Validation;
using ModelAsData.Sidecar;

namespace ModelAsData.IntegrationTests.Postgres;

/// <summary>
/// A sidecar started in-process with <see cref="SidecarHost"/>, polling only every five minutes, so what these tests
/// see validated was woken by NOTIFY or by the scan on (re)connect.
/// </summary>
public sealed class SidecarValidationTests(PostgresDatabase database) : RegistryTests(database)
{
    [Fact(Timeout = 90_000)]
    public async Task A_running_sidecar_marks_every_real_model_ready_with_the_signature_onnx_runtime_reads()
    {
        await using var sidecar = await RunningSidecar.StartAsync(Database.ConnectionString);
        var pushed = new List<(string File, ModelVersion Version)>();
        foreach (var file in TestModels.Loadable)
        {
            pushed.Add((file, await Registry.PushAsync(Sql.UniqueName("real"), TestModels.Bytes(file), new JsonObject { ["file"] = file }, Ct)));
        }

        foreach (var (file, version) in pushed)
        {
            var validated = await WaitUntilValidatedAsync(version);
            using var expected = OnnxModel.Load(TestModels.Bytes(file));

            Assert.True(validated.Status == VersionStatus.Ready, $"{file}: {validated.Status} {validated.Reason}");
            Assert.Null(validated.Reason);
            Assert.Equal(expected.Signature.ToJson(), validated.Signature!.ToJson());
            Assert.NotEmpty(validated.Signature.Inputs);
        }

        var validatedBy = await Database.DataSource.QueryAsync<string>(
            "SELECT DISTINCT validated_by FROM mad.model_versions WHERE model = ANY(@models)", new { models = pushed.Select(p => p.Version.Model).ToArray() });
        Assert.Equal([sidecar.Options.SidecarId], validatedBy);
        Assert.Equal(1, await Database.DataSource.ScalarAsync<int>(
            "SELECT count(*) FROM mad.sidecars WHERE id = @id AND stopped_at IS NULL AND heartbeat_at > now() - interval '1 minute'", new { id = sidecar.Options.SidecarId }));
    }

    [Fact(Timeout = 90_000)]
    public async Task Custom_op_and_truncated_models_are_rejected_with_onnx_runtimes_reason()
    {
        await using var sidecar = await RunningSidecar.StartAsync(Database.ConnectionString);
        var customOp = TestModels.Bytes(TestModels.CustomOp);
        var rf = TestModels.Bytes("skl2onnx_rf_iris.onnx");
        var truncated = rf[..(rf.Length / 2)];

        var rejected = new[]
        {
            (Bytes: customOp, Version: await Registry.PushAsync(Sql.UniqueName("customop"), customOp, [], Ct)),
            (Bytes: truncated, Version: await Registry.PushAsync(Sql.UniqueName("truncated"), truncated, [], Ct)),
        };

        foreach (var (bytes, version) in rejected)
        {
            var validated = await WaitUntilValidatedAsync(version);
            var expected = Assert.Throws<ModelAsDataException>(() => OnnxModel.Load(bytes));

            Assert.Equal(VersionStatus.Rejected, validated.Status);
            Assert.Equal(expected.Message, validated.Reason);
            Assert.StartsWith("ONNX Runtime cannot load the model", validated.Reason, StringComparison.Ordinal);
            Assert.Null(validated.Signature);
        }

        Assert.Contains("NegPos", (await ReadAsync(rejected[0].Version)).Reason, StringComparison.Ordinal);
    }

    [Fact(Timeout = 90_000)]
    public async Task A_version_pushed_while_no_sidecar_runs_is_validated_when_one_starts()
    {
        var version = await Registry.PushAsync(Sql.UniqueName("offline"), TestModels.Bytes("skl2onnx_logreg_iris.onnx"), [], Ct);
        await Task.Delay(200, Ct);
        Assert.Equal(VersionStatus.Pending, (await ReadAsync(version)).Status);

        await using var sidecar = await RunningSidecar.StartAsync(Database.ConnectionString);

        Assert.Equal(VersionStatus.Ready, (await WaitUntilValidatedAsync(version)).Status);
    }

    [Fact(Timeout = 90_000)]
    public async Task After_its_connection_is_terminated_the_listener_reconnects_and_validates_later_pushes()
    {
        await using var sidecar = await RunningSidecar.StartAsync(Database.ConnectionString);
        var first = await WaitForListenerAsync(sidecar, previous: 0);

        Assert.True(await Database.DataSource.ScalarAsync<bool>("SELECT pg_terminate_backend(@pid)", new { pid = first }));
        var second = await WaitForListenerAsync(sidecar, previous: first);
        var version = await Registry.PushAsync(Sql.UniqueName("reconnect"), TestModels.Bytes("onnxmltools_xgboost_regressor.onnx"), [], Ct);

        Assert.NotEqual(first, second);
        Assert.Equal(VersionStatus.Ready, (await WaitUntilValidatedAsync(version)).Status);
    }

    [Fact(Timeout = 90_000)]
    public async Task A_sidecar_that_stops_cleanly_is_marked_stopped()
    {
        var sidecar = await RunningSidecar.StartAsync(Database.ConnectionString);
        var id = sidecar.Options.SidecarId;
        await Eventually.WaitForAsync(
            () => Database.DataSource.ScalarAsync<int>("SELECT count(*) FROM mad.sidecars WHERE id = @id", new { id }), n => n == 1, "the sidecar to register");

        await sidecar.DisposeAsync();

        Assert.True(await Database.DataSource.ScalarAsync<bool>("SELECT stopped_at IS NOT NULL FROM mad.sidecars WHERE id = @id", new { id }));
    }

    [Fact(Timeout = 90_000)]
    public async Task Run_async_as_mad_serve_calls_it_validates_and_returns_when_cancelled()
    {
        var options = new SidecarOptions { PollInterval = TimeSpan.FromMinutes(5) };
        using var ctrlC = CancellationTokenSource.CreateLinkedTokenSource(Ct);
        var serve = SidecarHost.RunAsync(Database.ConnectionString, options, ctrlC.Token);
        var version = await Registry.PushAsync(Sql.UniqueName("serve"), TestModels.Bytes("skl2onnx_logreg_iris.onnx"), [], Ct);
        Assert.Equal(VersionStatus.Ready, (await WaitUntilValidatedAsync(version)).Status);

        await ctrlC.CancelAsync();
        await serve.WaitAsync(TimeSpan.FromSeconds(10), Ct);

        Assert.True(await Database.DataSource.ScalarAsync<bool>("SELECT stopped_at IS NOT NULL FROM mad.sidecars WHERE id = @id", new { id = options.SidecarId }));
    }

    [Fact(Timeout = 90_000)]
    public async Task Two_validators_never_validate_the_same_version_twice()
    {
        var versions = new List<ModelVersion>();
        for (var i = 0; i < 6; i++)
        {
            versions.Add(await Registry.PushAsync(Sql.UniqueName("shared"), TestModels.Bytes("skl2onnx_logreg_iris.onnx"), [], Ct));
        }

        var one = new PendingVersionValidator(Database.DataSource, new SidecarOptions { SidecarId = "one" });
        var two = new PendingVersionValidator(Database.DataSource, new SidecarOptions { SidecarId = "two" });
        var outcomes = await Task.WhenAll(Task.Run(() => one.ValidatePendingAsync(Ct)), Task.Run(() => two.ValidatePendingAsync(Ct)));

        var mine = outcomes.SelectMany(o => o).Where(o => versions.Any(v => v.Model == o.Model)).ToList();
        Assert.Equal(versions.Count, mine.Count);
        Assert.Equal(versions.Count, mine.Select(o => o.Model).Distinct().Count());
        Assert.All(mine, o => Assert.Equal(VersionStatus.Ready, o.Status));
    }

    [Fact(Timeout = 90_000)]
    public async Task Waiting_for_validation_returns_the_version_once_a_running_sidecar_decided()
    {
        await using var sidecar = await RunningSidecar.StartAsync(Database.ConnectionString);
        var good = await Registry.PushAsync(Sql.UniqueName("wait"), TestModels.Bytes("skl2onnx_rf_iris.onnx"), [], Ct);
        var bad = await Registry.PushAsync(Sql.UniqueName("wait"), TestModels.Bytes(TestModels.CustomOp), [], Ct);

        var ready = await Registry.WaitForValidationAsync(good.Model, good.Version, TimeSpan.FromSeconds(20), Ct);
        var rejected = await Registry.WaitForValidationAsync(bad.Model, bad.Version, TimeSpan.FromSeconds(20), Ct);

        Assert.Equal(VersionStatus.Ready, ready.Status);
        Assert.Equal(VersionStatus.Rejected, rejected.Status);
    }

    [Fact(Timeout = 90_000)]
    public async Task Waiting_for_validation_with_no_sidecar_running_times_out_saying_to_start_mad_serve()
    {
        var pushed = await Registry.PushAsync(Sql.UniqueName("nobody"), TestModels.Bytes("skl2onnx_logreg_iris.onnx"), [], Ct);

        var error = await Assert.ThrowsAsync<ModelAsDataException>(() => Registry.WaitForValidationAsync(pushed.Model, pushed.Version, TimeSpan.FromMilliseconds(300), Ct));
        var missing = await Assert.ThrowsAsync<ModelAsDataException>(() => Registry.WaitForValidationAsync(pushed.Model, 42, TimeSpan.FromSeconds(1), Ct));

        Assert.Equal(ErrorCode.Timeout, error.Code);
        Assert.Contains("no sidecar is running", error.Message, StringComparison.Ordinal);
        Assert.Contains("mad serve", error.Message, StringComparison.Ordinal);
        Assert.Equal(ErrorCode.NotFound, missing.Code);
    }

    private Task<ModelVersion> ReadAsync(ModelVersion version) =>
        Registry.ResolveAsync(ModelReference.Parse($"{version.Model}@{version.Version}"), Ct);

    private Task<ModelVersion> WaitUntilValidatedAsync(ModelVersion version) =>
        Eventually.WaitForAsync(() => ReadAsync(version), v => v.Status != VersionStatus.Pending, $"a sidecar to validate {version}");

    /// <summary>The backend pid of the sidecar's LISTEN session, once it is connected and not <paramref name="previous"/>.</summary>
    private static Task<int> WaitForListenerAsync(RunningSidecar sidecar, int previous) =>
        Eventually.WaitForAsync(() => Task.FromResult(sidecar.Listener.ProcessId), pid => pid != 0 && pid != previous, "the sidecar's listener to connect");
}

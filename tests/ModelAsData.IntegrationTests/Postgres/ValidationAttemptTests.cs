using Dapper;
using Google.Protobuf;
using ModelAsData.Bench;
using ModelAsData.Core.Onnx.Proto;
using ModelAsData.IntegrationTests.Hostile;
using ModelAsData.Sidecar;
using ModelAsData.Sidecar.Validation;

namespace ModelAsData.IntegrationTests.Postgres;

/// <summary>
/// Validation gives up on a version that fails twice (008_readers_see_their_own.sql): each claim's attempt is counted
/// on a second session before the model is loaded, so a sidecar killed while loading has counted it, and the claim
/// after the second attempt rejects the version with the reason. And models with external-data tensors are rejected.
/// </summary>
public sealed class ValidationAttemptTests(PostgresDatabase database) : RegistryTests(database)
{
    /// <summary>Relu nodes in the slow model: ONNX Runtime takes seconds to load them (about 7 s on the 2-core VM).</summary>
    private const int SlowNodes = 100_000;

    [Fact(Timeout = 120_000)]
    public async Task A_version_whose_load_is_killed_twice_is_rejected_by_the_next_claim_with_the_reason()
    {
        var version = await Registry.PushAsync(Sql.UniqueName("crashes"), SlowToLoad(), [], Ct);
        var killed = new List<string>();

        // A crashing load, honestly: a real `mad serve` process, SIGKILLed while ONNX Runtime loads the model (after
        // the attempt was counted, seconds before a verdict could be written), as the kernel's OOM killer would.
        for (var attempt = 1; attempt <= 2; attempt++)
        {
            await using var doomed = SidecarProcess.Start(Database.ConnectionString, SidecarProcess.NewId($"doomed{attempt}"));
            await Eventually.WaitForAsync(() => AttemptsAsync(version), n => n == attempt || doomed.HasExited,
                $"sidecar {attempt} to count its attempt", TimeSpan.FromSeconds(60));
            Assert.False(doomed.HasExited, doomed.Output);
            doomed.Kill();
            killed.Add(doomed.Id);
            await Eventually.WaitForAsync(() => Database.DataSource.ScalarAsync<long>(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND application_name LIKE 'mad serve%'"), n => n == 0,
                "the killed sidecar's sessions to end");
            Assert.Equal(VersionStatus.Pending, (await ReadAsync(version)).Status);
        }

        var outcome = await new PendingVersionValidator(Database.DataSource, new SidecarOptions { SidecarId = "third" }).ValidateNextAsync(Ct);

        Assert.Null(outcome); // nothing left to load: the claim rejected it and found no other pending version
        var rejected = await ReadAsync(version);
        Assert.Equal(VersionStatus.Rejected, rejected.Status);
        Assert.StartsWith($"Validation failed 2 times: the sidecar validating it stopped while loading it (the last attempt by {killed[1]} at ", rejected.Reason, StringComparison.Ordinal);
        Assert.Contains("check its tensors' sizes and push a fixed version", rejected.Reason, StringComparison.Ordinal);
        Assert.Equal(2, await AttemptsAsync(version)); // the rejecting claim loaded nothing, so counted nothing
        Assert.Equal(await Database.DataSource.ScalarAsync<string>("SELECT session_user::text"), await Database.DataSource.ScalarAsync<string>(
            "SELECT validated_by FROM mad.model_versions WHERE model = @Model AND version = @Version", version));
    }

    [Fact(Timeout = 90_000)]
    public async Task A_load_that_fails_without_a_verdict_twice_is_rejected_with_the_last_error()
    {
        var version = await Registry.PushAsync(Sql.UniqueName("oom"), TestModels.Bytes("skl2onnx_logreg_iris.onnx"), [], Ct);
        await using var roles = new HostileRoles(Database);
        var (_, sidecar) = await roles.LoginAsync("engine", "IN ROLE mad_sidecar");
        var statuses = new List<string>();

        // The protocol as the sidecar speaks it when ONNX Runtime runs out of memory: claim, count on another
        // session, mark 'failed'.
        for (var attempt = 1; attempt <= 2; attempt++)
        {
            await using var claiming = await sidecar.OpenConnectionAsync(Ct);
            await using var transaction = await claiming.BeginTransactionAsync(Ct);
            Assert.Equal(version.Version, await claiming.ExecuteScalarAsync<int>("SELECT version FROM mad.claim_pending_version()", transaction: transaction));
            Assert.Equal(attempt, await sidecar.ScalarAsync<int>("SELECT mad.count_validation_attempt(@Model, @Version, 'engine')", version));
            await claiming.ExecuteAsync("SELECT mad.mark_version(@Model, @Version, 'failed', @reason, NULL, 'engine')",
                new { version.Model, version.Version, reason = $"Loading the model ran out of memory (attempt {attempt})." }, transaction);
            await transaction.CommitAsync(Ct);
            statuses.Add((await ReadAsync(version)).Status.ToString());
        }

        Assert.Equal(["Pending", "Rejected"], statuses);
        Assert.Equal("Validation failed 2 times; the last attempt (engine) failed with: Loading the model ran out of memory (attempt 2).", (await ReadAsync(version)).Reason);
        Assert.Null(await sidecar.ScalarAsync<int?>("SELECT version FROM mad.claim_pending_version()"));
    }

    [Fact(Timeout = 90_000)]
    public async Task A_model_with_external_data_is_rejected_naming_the_tensor()
    {
        var bytes = await File.ReadAllBytesAsync(Path.Combine(AppContext.BaseDirectory, "TestData", "external_data.onnx"), Ct);
        var version = await Registry.PushAsync(Sql.UniqueName("external"), bytes, [], Ct);

        var outcome = await new PendingVersionValidator(Database.DataSource, new SidecarOptions { SidecarId = "tests" }).ValidateNextAsync(Ct);

        Assert.Equal(VersionStatus.Rejected, outcome!.Status);
        var rejected = await ReadAsync(version);
        Assert.Equal(VersionStatus.Rejected, rejected.Status);
        Assert.StartsWith("Tensor 'W' (an initializer of graph 'external_data', file 'external_data.weights') keeps its data in an external file", rejected.Reason, StringComparison.Ordinal);
        Assert.Contains("save_as_external_data=False", rejected.Reason, StringComparison.Ordinal);
        Assert.Null(rejected.Signature);
        Assert.Equal(1, await AttemptsAsync(version));
    }

    private Task<ModelVersion> ReadAsync(ModelVersion version) =>
        Registry.ResolveAsync(new(version.Model, null, version.Version), Ct);

    private Task<int> AttemptsAsync(ModelVersion version) =>
        Database.DataSource.ScalarAsync<int>(
            "SELECT coalesce((SELECT attempts FROM mad.version_validations WHERE model = @Model AND version = @Version), 0)", version);

    /// <summary>A valid model (x → Relu → … → y) that ONNX Runtime loads slowly: many nodes, a few MB, no weights.</summary>
    private static byte[] SlowToLoad()
    {
        var graph = new GraphProto { Name = "chain" };
        graph.Input.Add(Value("x"));
        graph.Output.Add(Value("y"));
        for (var i = 0; i < SlowNodes; i++)
        {
            graph.Node.Add(new NodeProto { OpType = "Relu", Name = $"n{i}", Input = { i == 0 ? "x" : $"t{i - 1}" }, Output = { i == SlowNodes - 1 ? "y" : $"t{i}" } });
        }

        var model = new ModelProto { IrVersion = 8, Graph = graph };
        model.OpsetImport.Add(new OperatorSetIdProto { Domain = "", Version = 17 });
        return model.ToByteArray();
    }

    private static ValueInfoProto Value(string name) => new()
    {
        Name = name,
        Type = new TypeProto
        {
            TensorType = new TypeProto.Types.Tensor
            {
                ElemType = 1,
                Shape = new TensorShapeProto { Dim = { new TensorShapeProto.Types.Dimension { DimParam = "N" }, new TensorShapeProto.Types.Dimension { DimValue = 4 } } },
            },
        },
    };
}

using System.Text.Json.Nodes;
using ModelAsData.Core.Registry;
using ModelAsData.IntegrationTests.Infrastructure;
using ModelAsData.Postgres.Registry;
using ModelAsData.Sidecar;

namespace ModelAsData.IntegrationTests.Contract;

/// <summary>The registry contract on PostgreSQL: versions are made ready by the sidecar's validator, called directly.</summary>
public sealed class PostgresRegistryContractTests(PostgresDatabase database) : RegistryContractTests, IClassFixture<PostgresDatabase>
{
    protected override string ExpectedKind => "postgres";

    protected override Task<IModelRegistry> OpenRegistryAsync() => Task.FromResult<IModelRegistry>(new PostgresModelRegistry(database.DataSource));

    protected override async Task<ModelVersion> PushReadyAsync(string model, byte[] onnx, JsonObject? metadata = null)
    {
        var pushed = await Registry.PushAsync(model, onnx, metadata ?? [], Ct);
        Assert.Equal(VersionStatus.Pending, pushed.Status);
        await new PendingVersionValidator(database.DataSource, new SidecarOptions { SidecarId = "contract-tests" }).ValidatePendingAsync(Ct);
        return await Registry.ResolveAsync(new(model, null, pushed.Version), Ct);
    }
}

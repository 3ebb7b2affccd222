using ModelAsData.Sidecar.Validation;
using ModelAsData.Sidecar;

namespace ModelAsData.IntegrationTests.Postgres;

/// <summary>Pushes versions and validates them at once with the sidecar's validator, without running a sidecar.</summary>
internal static class ReadyModels
{
    public static async Task<ModelVersion> PushReadyAsync(this PostgresModelRegistry registry, string model, string file = "skl2onnx_logreg_iris.onnx")
    {
        var pushed = await registry.PushAsync(model, TestModels.Bytes(file), [], TestContext.Current.CancellationToken);
        await new PendingVersionValidator(registry.DataSource, new SidecarOptions { SidecarId = "tests" }).ValidatePendingAsync(TestContext.Current.CancellationToken);
        return await registry.ResolveAsync(new(model, null, pushed.Version), TestContext.Current.CancellationToken);
    }
}

using ModelAsData.Sidecar.Validation;
using ModelAsData.Sidecar;

namespace ModelAsData.IntegrationTests.Postgres;

/// <summary>Pushes versions and validates them at once with the sidecar's validator (or waits for a running sidecar's).</summary>
internal static class ReadyModels
{
    public static async Task<ModelVersion> PushReadyAsync(this PostgresModelRegistry registry, string model, string file = "skl2onnx_logreg_iris.onnx")
    {
        var pushed = await registry.PushAsync(model, TestModels.Bytes(file), [], TestContext.Current.CancellationToken);
        await new PendingVersionValidator(registry.DataSource, new SidecarOptions { SidecarId = "tests" }).ValidatePendingAsync(TestContext.Current.CancellationToken);
        // A running sidecar may have claimed one of the model's versions first (the claim skips locked rows, so the
        // validator above passed it by): wait for it to finish, so that every version pushed so far is decided.
        for (var version = 1; version <= pushed.Version; version++)
        {
            await registry.WaitForValidationAsync(model, version, TimeSpan.FromSeconds(60), TestContext.Current.CancellationToken);
        }

        return await registry.ResolveAsync(new(model, null, pushed.Version), TestContext.Current.CancellationToken);
    }
}

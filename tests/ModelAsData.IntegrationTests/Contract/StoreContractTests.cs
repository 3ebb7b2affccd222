using System.Text.Json.Nodes;

namespace ModelAsData.IntegrationTests.Contract;

/// <summary>
/// The life of a contract test class, whatever it checks: each test gets a registry of the store, opened before it
/// and disposed after it, then the store removes what it made. Subclasses say how the store opens and pushes.
/// </summary>
public abstract class StoreContractTests : IAsyncLifetime
{
    private IModelRegistry? _registry;

    protected IModelRegistry Registry => _registry ?? throw new InvalidOperationException("InitializeAsync has not run.");

    protected static CancellationToken Ct => TestContext.Current.CancellationToken;

    /// <summary>A migrated registry for one test (and whatever else the test needs of the store); disposed after it.</summary>
    protected abstract Task<IModelRegistry> OpenRegistryAsync();

    /// <summary>Pushes <paramref name="onnx"/> and returns the version once the store has validated it.</summary>
    protected abstract Task<ModelVersion> PushReadyAsync(string model, byte[] onnx, JsonObject? metadata = null);

    public async ValueTask InitializeAsync() => _registry = await OpenRegistryAsync();

    public async ValueTask DisposeAsync()
    {
        if (_registry is not null)
        {
            await _registry.DisposeAsync();
        }

        await CleanUpAsync();
        GC.SuppressFinalize(this);
    }

    /// <summary>Removes what <see cref="OpenRegistryAsync"/> made for this test, after the registry is disposed.</summary>
    protected virtual ValueTask CleanUpAsync() => ValueTask.CompletedTask;
}

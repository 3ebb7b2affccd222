namespace ModelAsData.Sidecar;

/// <summary>A coalescing wake-up: any number of <see cref="Set"/> calls before a wait count as one.</summary>
internal sealed class WakeSignal : IDisposable
{
    private readonly SemaphoreSlim _semaphore = new(0, 1);

    public void Set()
    {
        try
        {
            _semaphore.Release();
        }
        catch (SemaphoreFullException)
        {
            // Already set: the waiter will wake once, and scan for everything.
        }
    }

    /// <summary>Waits for a <see cref="Set"/> or for <paramref name="timeout"/>, whichever comes first.</summary>
    public Task WaitAsync(TimeSpan timeout, CancellationToken cancellationToken) => _semaphore.WaitAsync(timeout, cancellationToken);

    public void Dispose() => _semaphore.Dispose();
}

namespace ModelAsData.IntegrationTests.Infrastructure;

/// <summary>Waits for something another process (a sidecar) does, polling, with a deadline and a useful failure.</summary>
public static class Eventually
{
    public static readonly TimeSpan DefaultTimeout = TimeSpan.FromSeconds(20);

    public static async Task<T> WaitForAsync<T>(Func<Task<T>> probe, Func<T, bool> done, string what, TimeSpan? timeout = null)
    {
        var deadline = DateTime.UtcNow + (timeout ?? DefaultTimeout);
        var last = await probe();
        while (!done(last))
        {
            if (DateTime.UtcNow > deadline)
            {
                throw new TimeoutException($"Waited {(timeout ?? DefaultTimeout).TotalSeconds:0} s for {what}; last seen: {last}.");
            }

            await Task.Delay(50, TestContext.Current.CancellationToken);
            last = await probe();
        }

        return last;
    }
}

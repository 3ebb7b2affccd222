namespace ModelAsData.Sidecar.Requests;

/// <summary>
/// A loaded version held for one request (<see cref="LoadedVersions.AcquireAsync"/>): while any lease is held the
/// version is not disposed, even if it was evicted meanwhile. Dispose it once, when the request is done with it.
/// </summary>
public sealed class VersionLease : IDisposable
{
    private readonly LoadedVersions _owner;
    private readonly LoadedVersions.Entry _entry;
    private int _released;

    internal VersionLease(LoadedVersions owner, LoadedVersions.Entry entry, RequestVersion version)
    {
        _owner = owner;
        _entry = entry;
        Version = version;
    }

    public RequestVersion Version { get; }

    public void Dispose()
    {
        if (Interlocked.Exchange(ref _released, 1) == 0)
        {
            _owner.Release(_entry);
        }
    }
}

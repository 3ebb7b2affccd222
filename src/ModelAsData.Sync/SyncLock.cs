using ModelAsData.Core;

namespace ModelAsData.Sync;

/// <summary>
/// One sync of a device file at a time: an exclusive lock on <c>FILE.sync-lock</c> beside it. The operating system
/// drops the lock when the process dies, so a killed pull never leaves a stale one behind.
/// </summary>
internal sealed class SyncLock : IDisposable
{
    private readonly FileStream _stream;

    private SyncLock(FileStream stream) => _stream = stream;

    public static SyncLock Take(string devicePath)
    {
        var path = Path.GetFullPath(devicePath) + ".sync-lock";
        try
        {
            return new SyncLock(new FileStream(path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None));
        }
        catch (IOException e)
        {
            throw new ModelAsDataException(ErrorCode.Conflict,
                $"Another mad sync of {devicePath} is running (it holds {path}); wait for it to end and try again. Nothing was changed.", e);
        }
    }

    public void Dispose() => _stream.Dispose();
}

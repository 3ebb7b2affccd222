using System.Runtime.InteropServices;

namespace ModelAsData.Core.Onnx;

/// <summary>
/// Gives back to the system what loading a large model left behind: the managed copy of its bytes (and of the
/// protobuf parses that check it), which a caller may still reference while <see cref="OnnxModel.Load"/> returns,
/// and the native heap ONNX Runtime freed after building its session (glibc keeps freed heap pages unless trimmed).
/// Without this a 300 MB model holds ~1 GB of a process after loading; with it, little more than ONNX Runtime's own
/// copy of the weights (docs/LARGE_MODELS.md). Runs on the thread pool a second after the last large load and again
/// ten seconds later, when callers that held the bytes a while longer (an async method still running) have let go.
/// </summary>
internal static class MemoryReclaim
{
    /// <summary>Below this a load's leftovers are not worth a full blocking collection.</summary>
    public const long LargeModelBytes = 64L * 1024 * 1024;

    private static readonly TimeSpan s_first = TimeSpan.FromSeconds(1);
    private static readonly TimeSpan s_second = TimeSpan.FromSeconds(9);
    private static readonly Lock s_lock = new();
    private static Timer? s_timer;
    private static int s_shotsLeft;

    /// <summary>Schedules a compacting collection and a heap trim in a second and ten (a later call starts over).</summary>
    public static void Soon()
    {
        lock (s_lock)
        {
            s_timer ??= new Timer(_ => Shot());
            s_shotsLeft = 2;
            s_timer.Change(s_first, Timeout.InfiniteTimeSpan);
        }
    }

    private static void Shot()
    {
        Now();
        lock (s_lock)
        {
            if (--s_shotsLeft > 0)
            {
                s_timer!.Change(s_second, Timeout.InfiniteTimeSpan);
            }
        }
    }

    /// <summary>Collects and trims now.</summary>
    public static void Now()
    {
        GC.Collect(GC.MaxGeneration, GCCollectionMode.Aggressive, blocking: true, compacting: true);
        if (OperatingSystem.IsLinux())
        {
            try
            {
                _ = MallocTrim(0);
            }
            catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
            {
                // Not glibc (musl, e.g. Alpine): nothing to trim.
            }
        }
    }

    // DllImport, not LibraryImport: the latter needs unsafe code enabled in Core for one blittable call.
    [DllImport("libc", EntryPoint = "malloc_trim", ExactSpelling = true)]
    [DefaultDllImportSearchPaths(DllImportSearchPath.SafeDirectories)]
    private static extern int MallocTrim(nuint pad);
}

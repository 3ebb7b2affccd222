using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using ModelAsData.Core;
using Npgsql;

namespace ModelAsData.Bench;

/// <summary>
/// A sidecar (<c>mad serve</c>, the <c>mad.dll</c> beside the running binary) as its own process, as in production:
/// a bench must not share its thread pool or CPU accounting, and a test can kill it with SIGKILL or freeze it with
/// SIGSTOP. Disposing kills it if it still runs. It keeps the last lines of its output, so whoever waits on it in
/// vain can say why. Not thread-safe.
/// </summary>
public sealed class SidecarProcess : IAsyncDisposable
{
    private const int TailLines = 50;

    private readonly Process _process;
    private readonly ConcurrentQueue<string> _tail = new();

    private SidecarProcess(Process process, string id)
    {
        _process = process;
        Id = id;
        _process.OutputDataReceived += (_, e) => Remember(e.Data);
        _process.ErrorDataReceived += (_, e) => Remember(e.Data);
        _process.BeginOutputReadLine();
        _process.BeginErrorReadLine();
    }

    /// <summary>The sidecar's name in <c>mad.sidecars</c> and <c>mad.request_workers</c>.</summary>
    public string Id { get; }

    /// <summary>
    /// Starts <c>mad serve --id <paramref name="id"/></c> from this binary's folder, with <c>--http</c> when a port is
    /// given and <paramref name="environment"/> added to its environment (e.g. <c>MAD_BATCH_SIZE</c>).
    /// </summary>
    public static SidecarProcess Start(string db, string id, int? httpPort = null, IReadOnlyDictionary<string, string>? environment = null)
    {
        var start = new ProcessStartInfo("dotnet") { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var (name, value) in environment ?? new Dictionary<string, string>())
        {
            start.Environment[name] = value;
        }

        string[] args = [Path.Combine(AppContext.BaseDirectory, "mad.dll"), "serve", "--db", db, "--id", id];
        if (httpPort is { } port)
        {
            args = [.. args, "--http", $"127.0.0.1:{port.ToString(CultureInfo.InvariantCulture)}"];
        }

        foreach (var arg in args)
        {
            start.ArgumentList.Add(arg);
        }

        var process = Process.Start(start) ?? throw new InvalidOperationException("Could not start `mad serve`.");
        return new SidecarProcess(process, id);
    }

    public bool HasExited => _process.HasExited;

    /// <summary>Its last lines of output, for failure messages.</summary>
    public string Output => string.Join(Environment.NewLine, _tail);

    /// <summary>SIGKILL: no shutdown, no lease given back, connections dropped by the kernel.</summary>
    public void Kill()
    {
        _process.Kill(entireProcessTree: true);
        _process.WaitForExit(10_000);
    }

    /// <summary>A sidecar id unique to this run: <paramref name="prefix"/> and random hex, 20 characters in all.</summary>
    public static string NewId(string prefix) => $"{prefix}-{Guid.NewGuid():N}"[..20];

    /// <summary>Whether <see cref="Pause"/> can stop the process here (POSIX signals).</summary>
    public static bool CanPause => OperatingSystem.IsLinux() || OperatingSystem.IsMacOS();

    /// <summary>Stops the process where it stands (SIGSTOP), to measure the system without it.</summary>
    public void Pause() => Signal(SigStop);

    /// <summary>Lets a paused process go on (SIGCONT).</summary>
    public void Resume() => Signal(SigCont);

    private void Signal(int signal)
    {
        if (Kill(_process.Id, signal) != 0)
        {
            throw new InvalidOperationException($"Could not send signal {signal} to the sidecar (pid {_process.Id}).");
        }
    }

    private static int SigStop => OperatingSystem.IsMacOS() ? 17 : 19;

    private static int SigCont => OperatingSystem.IsMacOS() ? 19 : 18;

    [System.Runtime.InteropServices.DllImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static extern int Kill(int pid, int signal);

    /// <summary>A loopback port nobody listens on now (for <c>--http</c>).</summary>
    public static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    /// <summary>Waits until the sidecar's request worker has registered, i.e. it is connected and listening; fails after <paramref name="timeout"/>.</summary>
    public async Task WaitForWorkerAsync(NpgsqlDataSource dataSource, TimeSpan timeout, CancellationToken cancellationToken)
    {
        var started = Stopwatch.GetTimestamp();
        while (true)
        {
            ThrowIfExited();
            await using (var command = dataSource.CreateCommand("SELECT EXISTS (SELECT FROM mad.request_workers WHERE sidecar = $1)"))
            {
                command.Parameters.Add(new() { Value = Id });
                if ((bool)(await command.ExecuteScalarAsync(cancellationToken))!)
                {
                    return;
                }
            }

            if (Stopwatch.GetElapsedTime(started) > timeout)
            {
                throw new ModelAsDataException(ErrorCode.Timeout, $"The sidecar {Id} did not register in mad.request_workers within {timeout.TotalSeconds:0} s. {Describe()}");
            }

            await Task.Delay(50, cancellationToken);
        }
    }

    /// <summary>Throws, with the sidecar's last output, if it has exited: every later wait on it would only time out.</summary>
    public void ThrowIfExited()
    {
        if (_process.HasExited)
        {
            throw new ModelAsDataException(ErrorCode.Conflict, $"The sidecar {Id} exited. {Describe()}");
        }
    }

    /// <summary>Whether it runs, and its last lines of output, for error messages.</summary>
    public string Describe()
    {
        var state = _process.HasExited ? $"`mad serve` exited with code {_process.ExitCode}" : $"`mad serve` (pid {_process.Id}) is running";
        return _tail.IsEmpty ? $"{state}; it printed nothing." : $"{state}; its last output:{Environment.NewLine}{Output}";
    }

    public async ValueTask DisposeAsync()
    {
        if (!_process.HasExited)
        {
            _process.Kill(entireProcessTree: true);
        }

        await _process.WaitForExitAsync(CancellationToken.None);
        _process.Dispose();
    }

    private void Remember(string? line)
    {
        if (line is null)
        {
            return;
        }

        _tail.Enqueue(line);
        while (_tail.Count > TailLines && _tail.TryDequeue(out _))
        {
        }
    }
}

using System.Diagnostics;
using System.Text;

namespace ModelAsData.IntegrationTests.Batch;

/// <summary>
/// A sidecar as a separate process (<c>dotnet mad.dll serve</c>, the CLI built into the test output), so a test can
/// kill it with SIGKILL. Disposing kills it if it still runs; its output is kept for failure messages.
/// </summary>
internal sealed class SidecarProcess : IDisposable
{
    private readonly Process _process;
    private readonly StringBuilder _output = new();

    private SidecarProcess(Process process)
    {
        _process = process;
    }

    public string Id { get; private init; } = "";

    public string Output
    {
        get
        {
            lock (_output)
            {
                return _output.ToString();
            }
        }
    }

    public static SidecarProcess Start(string connectionString, IReadOnlyDictionary<string, string> environment)
    {
        var id = $"killable-{Guid.NewGuid():N}"[..20];
        var start = new ProcessStartInfo("dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var argument in new[] { Path.Combine(AppContext.BaseDirectory, "mad.dll"), "serve", "--db", connectionString, "--id", id })
        {
            start.ArgumentList.Add(argument);
        }

        foreach (var (name, value) in environment)
        {
            start.Environment[name] = value;
        }

        var process = new Process { StartInfo = start };
        var sidecar = new SidecarProcess(process) { Id = id };
        process.OutputDataReceived += (_, e) => sidecar.Append(e.Data);
        process.ErrorDataReceived += (_, e) => sidecar.Append(e.Data);
        process.Start();
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return sidecar;
    }

    public bool HasExited => _process.HasExited;

    /// <summary>SIGKILL: no shutdown, no lease given back, connections dropped by the kernel.</summary>
    public void Kill()
    {
        _process.Kill(entireProcessTree: true);
        _process.WaitForExit(10_000);
    }

    /// <summary>SIGSTOP: the process stands still, its sessions open, until it is killed.</summary>
    public void Pause()
    {
        if (Signal(_process.Id, 19) != 0)
        {
            throw new InvalidOperationException($"Could not stop the sidecar (pid {_process.Id}).");
        }
    }

    public void Dispose()
    {
        if (!_process.HasExited)
        {
            Kill();
        }

        _process.Dispose();
    }

    private void Append(string? line)
    {
        if (line is null)
        {
            return;
        }

        lock (_output)
        {
            _output.AppendLine(line);
        }
    }

    [System.Runtime.InteropServices.DllImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static extern int Signal(int pid, int signal);
}

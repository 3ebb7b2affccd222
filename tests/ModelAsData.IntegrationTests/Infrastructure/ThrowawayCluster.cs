using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;

namespace ModelAsData.IntegrationTests.Infrastructure;

/// <summary>
/// A PostgreSQL cluster of its own, started from the installed server binaries in a temp folder on a free loopback
/// port with trust authentication, and removed afterwards. initdb refuses to run as root, so as root every server
/// command runs as the unprivileged user <c>postgres</c> through <c>runuser</c>.
/// </summary>
internal sealed class ThrowawayCluster : IAsyncDisposable
{
    private const string ServerUser = "postgres";

    private readonly string _bin;
    private readonly string _folder;
    private readonly bool _asRoot;

    private ThrowawayCluster(string bin, string folder, int port, bool asRoot)
    {
        _bin = bin;
        _folder = folder;
        Port = port;
        _asRoot = asRoot;
    }

    public int Port { get; }

    public string ConnectionString =>
        $"Host=127.0.0.1;Port={Port.ToString(CultureInfo.InvariantCulture)};Username={ServerUser};Database=postgres;Pooling=true;Timeout=10";

    /// <summary>Picks the server binaries: <c>MAD_TEST_PG_BIN</c> (a folder, or <c>none</c> to use none) overrides the search.</summary>
    public const string BinEnvironmentVariable = "MAD_TEST_PG_BIN";

    /// <summary>
    /// The <c>bin</c> folder with initdb and pg_ctl: <c>MAD_TEST_PG_BIN</c> when set (to test another major version),
    /// else the newest installed; null when PostgreSQL's server is not installed.
    /// </summary>
    public static string? FindBinaries()
    {
        if (Environment.GetEnvironmentVariable(BinEnvironmentVariable) is { Length: > 0 } chosen)
        {
            return chosen == "none" ? null
                : File.Exists(Path.Combine(chosen, "initdb")) ? chosen
                : throw new InvalidOperationException($"{BinEnvironmentVariable}={chosen} has no initdb: point it at a PostgreSQL bin folder, e.g. /usr/lib/postgresql/15/bin.");
        }

        const string root = "/usr/lib/postgresql";
        if (Directory.Exists(root))
        {
            var newest = Directory.GetDirectories(root)
                .Select(d => (Dir: d, Version: decimal.TryParse(Path.GetFileName(d), NumberStyles.Number, CultureInfo.InvariantCulture, out var v) ? v : -1))
                .Where(d => File.Exists(Path.Combine(d.Dir, "bin", "initdb")) && File.Exists(Path.Combine(d.Dir, "bin", "pg_ctl")))
                .OrderByDescending(d => d.Version)
                .Select(d => Path.Combine(d.Dir, "bin"))
                .FirstOrDefault();
            if (newest is not null)
            {
                return newest;
            }
        }

        // Distributions that put the server on PATH (Fedora, Homebrew).
        return (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':')
            .FirstOrDefault(d => d.Length > 0 && File.Exists(Path.Combine(d, "initdb")) && File.Exists(Path.Combine(d, "pg_ctl")));
    }

    public static async Task<ThrowawayCluster> StartAsync(string bin)
    {
        var asRoot = Environment.UserName == "root";
        var folder = Directory.CreateTempSubdirectory("mad-pg-").FullName;
        var port = FreePort();
        var cluster = new ThrowawayCluster(bin, folder, port, asRoot);
        try
        {
            if (asRoot)
            {
                await RunAsync("chown", [ServerUser, folder], null);
            }

            var data = Path.Combine(folder, "data");
            await cluster.RunServerToolAsync("initdb", ["-D", data, "-U", ServerUser, "--auth=trust", "--encoding=UTF8", "--no-sync", "--no-instructions"]);
            // Durability is irrelevant for a throwaway cluster; these settings make tests fast.
            var options = string.Join(' ', $"-p {port}", $"-k {folder}", "-c listen_addresses=127.0.0.1", "-c fsync=off",
                "-c synchronous_commit=off", "-c full_page_writes=off", "-c max_connections=200");
            await cluster.RunServerToolAsync("pg_ctl", ["-D", data, "-o", options, "-l", Path.Combine(folder, "server.log"), "-w", "-t", "60", "start"]);
            return cluster;
        }
        catch
        {
            await cluster.DisposeAsync();
            throw;
        }
    }

    /// <summary>
    /// Restarts the server as an operator does (<c>pg_ctl restart -m fast</c>: open sessions are ended with 57P01, the
    /// server comes back with the options it had), and returns once it accepts connections again.
    /// </summary>
    public Task RestartAsync() =>
        RunServerToolAsync("pg_ctl", ["-D", Path.Combine(_folder, "data"), "-l", Path.Combine(_folder, "server.log"), "-m", "fast", "-w", "-t", "60", "restart"]);

    public async ValueTask DisposeAsync()
    {
        var data = Path.Combine(_folder, "data");
        if (File.Exists(Path.Combine(data, "postmaster.pid")))
        {
            try
            {
                await RunServerToolAsync("pg_ctl", ["-D", data, "-m", "immediate", "-w", "stop"]);
            }
            catch (InvalidOperationException)
            {
                // Already gone: remove the folder anyway.
            }
        }

        try
        {
            Directory.Delete(_folder, recursive: true);
        }
        catch (IOException)
        {
        }
        catch (UnauthorizedAccessException)
        {
        }
    }

    private Task RunServerToolAsync(string tool, IReadOnlyList<string> arguments)
    {
        var path = Path.Combine(_bin, tool);
        return _asRoot
            ? RunAsync("runuser", ["-u", ServerUser, "--", path, .. arguments], _folder)
            : RunAsync(path, arguments, _folder);
    }

    private static async Task RunAsync(string file, IReadOnlyList<string> arguments, string? workingDirectory)
    {
        var start = new ProcessStartInfo(file)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            WorkingDirectory = workingDirectory ?? Path.GetTempPath(),
        };
        foreach (var argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }

        using var process = Process.Start(start) ?? throw new InvalidOperationException($"Cannot start {file}.");
        var output = process.StandardOutput.ReadToEndAsync();
        var error = process.StandardError.ReadToEndAsync();
        await process.WaitForExitAsync();
        if (process.ExitCode != 0)
        {
            throw new InvalidOperationException(
                $"{file} {string.Join(' ', arguments)} exited with {process.ExitCode}:\n{await output}\n{await error}");
        }
    }

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}

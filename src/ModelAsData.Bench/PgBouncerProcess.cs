using System.Diagnostics;
using System.Globalization;
using Npgsql;

namespace ModelAsData.Bench;

/// <summary>
/// A PgBouncer in <c>pool_mode = transaction</c> in front of the bench's database, as most managed PostgreSQL users
/// reach theirs, started from the installed <c>pgbouncer</c> binary in a temp folder on a free loopback port, and
/// stopped and removed on dispose. It logs in to the server as the bench's login (the password, if any, sits in its
/// auth file, readable by its owner only, deleted with the folder). PgBouncer refuses to run as root: as root it runs
/// as <c>postgres</c>. Not thread-safe.
/// </summary>
internal sealed class PgBouncerProcess : IAsyncDisposable
{
    private readonly string _folder;

    private PgBouncerProcess(string folder, string connectionString)
    {
        _folder = folder;
        ConnectionString = connectionString;
    }

    /// <summary>PgBouncer's server pool per (database, login): its default, fewer than the most clients the bench runs.</summary>
    public const int PoolSize = 20;

    /// <summary>The bench's connection string, through PgBouncer.</summary>
    public string ConnectionString { get; }

    /// <summary>The binary, or null when PgBouncer is not installed.</summary>
    public static string? FindBinary() => new[] { "/usr/sbin/pgbouncer", "/usr/bin/pgbouncer", "/usr/local/bin/pgbouncer" }.FirstOrDefault(File.Exists);

    public static async Task<PgBouncerProcess> StartAsync(string binary, string db, CancellationToken cancellationToken)
    {
        var server = Postgres.PostgresConnectionString.Parse(db);
        var folder = Directory.CreateTempSubdirectory("mad-bench-pgbouncer-").FullName;
        var port = SidecarProcess.FreePort();
        var users = Path.Combine(folder, "users.txt");
        await File.WriteAllTextAsync(users, $"\"{server.Username}\" \"{server.Password?.Replace("\"", "\"\"", StringComparison.Ordinal)}\"\n", cancellationToken);
        if (!OperatingSystem.IsWindows())
        {
            File.SetUnixFileMode(users, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        }

        var ini = Path.Combine(folder, "pgbouncer.ini");
        await File.WriteAllTextAsync(ini, string.Join('\n',
            "[databases]",
            string.Create(CultureInfo.InvariantCulture, $"* = host={server.Host} port={server.Port}"),
            "[pgbouncer]",
            "listen_addr = 127.0.0.1",
            string.Create(CultureInfo.InvariantCulture, $"listen_port = {port}"),
            "unix_socket_dir =",
            "auth_type = trust",
            $"auth_file = {users}",
            "pool_mode = transaction",
            string.Create(CultureInfo.InvariantCulture, $"default_pool_size = {PoolSize}"),
            "max_client_conn = 500",
            "ignore_startup_parameters = extra_float_digits",
            $"logfile = {Path.Combine(folder, "pgbouncer.log")}",
            $"pidfile = {Path.Combine(folder, "pgbouncer.pid")}",
            ""), cancellationToken);
        var bouncer = new PgBouncerProcess(folder, new NpgsqlConnectionStringBuilder(server.ConnectionString) { Host = "127.0.0.1", Port = port, ApplicationName = "mad bench via pgbouncer" }.ConnectionString);
        try
        {
            if (Environment.UserName == "root")
            {
                await RunAsync("chown", ["-R", "postgres", folder]);
                await RunAsync("runuser", ["-u", "postgres", "--", binary, "-d", "-q", ini]);
            }
            else
            {
                await RunAsync(binary, ["-d", "-q", ini]);
            }

            // -d forks: the daemon listens a moment after the command returns.
            for (var attempt = 0; ; attempt++)
            {
                try
                {
                    await using var probe = new NpgsqlConnection(new NpgsqlConnectionStringBuilder(bouncer.ConnectionString) { Pooling = false }.ConnectionString);
                    await probe.OpenAsync(cancellationToken);
                    return bouncer;
                }
                catch (NpgsqlException) when (attempt < 100)
                {
                    await Task.Delay(100, cancellationToken);
                }
            }
        }
        catch
        {
            await bouncer.DisposeAsync();
            throw;
        }
    }

    public async ValueTask DisposeAsync()
    {
        var pidFile = Path.Combine(_folder, "pgbouncer.pid");
        if (File.Exists(pidFile))
        {
            await RunAsync("kill", [(await File.ReadAllTextAsync(pidFile)).Trim()]);
        }

        NpgsqlConnection.ClearAllPools();
        try
        {
            Directory.Delete(_folder, recursive: true);
        }
        catch (IOException)
        {
        }
    }

    private static async Task RunAsync(string file, IReadOnlyList<string> arguments)
    {
        var start = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }

        using var process = Process.Start(start) ?? throw new InvalidOperationException($"Cannot start {file}.");
        var error = process.StandardError.ReadToEndAsync();
        await process.StandardOutput.ReadToEndAsync();
        await process.WaitForExitAsync();
        if (process.ExitCode != 0)
        {
            throw new InvalidOperationException($"{file} {string.Join(' ', arguments)} exited with {process.ExitCode}: {await error}");
        }
    }
}

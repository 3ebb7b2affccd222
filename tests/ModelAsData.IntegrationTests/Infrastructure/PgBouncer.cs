using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;

namespace ModelAsData.IntegrationTests.Infrastructure;

/// <summary>
/// A PgBouncer in <c>pool_mode = transaction</c> (how Supabase, Neon, Azure and RDS Proxy pool) in front of the test
/// server, started from Debian's <c>pgbouncer</c> package (test.sh installs it) on a free loopback port, with a small
/// server pool so that clients share server connections. Trust authentication: a login must be allowed by name
/// (<see cref="AllowAsync"/>). PgBouncer refuses to run as root, so as root it runs as <c>postgres</c>. A class fixture;
/// a missing binary fails with what to install, never a skip.
/// </summary>
public sealed class PgBouncer : IAsyncLifetime
{
    private const string ServerUser = "postgres";
    private readonly PostgresServer _server;
    private readonly bool _asRoot = Environment.UserName == "root";
    private readonly string _ignoreStartupParameters;
    private string _folder = "";
    private string _users = "";

    public PgBouncer(PostgresServer server)
        : this(server, "extra_float_digits")
    {
    }

    private PgBouncer(PostgresServer server, string ignoreStartupParameters)
    {
        _server = server;
        _ignoreStartupParameters = ignoreStartupParameters;
    }

    /// <summary>
    /// A second PgBouncer that also drops the startup parameters a sidecar sends (<c>search_path</c>, <c>options</c>),
    /// as a PgBouncer configured for them lets them through: a client then connects, and only the session tells.
    /// The caller disposes it.
    /// </summary>
    public static async Task<PgBouncer> StartIgnoringSessionParametersAsync(PostgresServer server)
    {
        var pgBouncer = new PgBouncer(server, "extra_float_digits, search_path, options");
        await pgBouncer.InitializeAsync();
        return pgBouncer;
    }

    public int Port { get; private set; }

    /// <summary>The size of each (database, user) server pool: fewer than the clients the tests run.</summary>
    public const int PoolSize = 2;

    public async ValueTask InitializeAsync()
    {
        var binary = new[] { "/usr/sbin/pgbouncer", "/usr/bin/pgbouncer" }.FirstOrDefault(File.Exists)
            ?? throw new InvalidOperationException("PgBouncer is not installed: run ./test.sh (it installs Debian's pgbouncer package) or `apt-get install pgbouncer`.");
        var server = new NpgsqlConnectionStringBuilder(_server.AdminConnectionString);
        _folder = Directory.CreateTempSubdirectory("mad-pgbouncer-").FullName;
        _users = Path.Combine(_folder, "users.txt");
        Port = FreePort();
        await File.WriteAllTextAsync(_users, $"\"{server.Username}\" \"\"\n");
        var ini = Path.Combine(_folder, "pgbouncer.ini");
        await File.WriteAllTextAsync(ini, string.Join('\n',
            "[databases]",
            string.Create(CultureInfo.InvariantCulture, $"* = host={server.Host} port={server.Port}"),
            "[pgbouncer]",
            "listen_addr = 127.0.0.1",
            string.Create(CultureInfo.InvariantCulture, $"listen_port = {Port}"),
            "unix_socket_dir =",
            "auth_type = trust",
            $"auth_file = {_users}",
            "pool_mode = transaction",
            string.Create(CultureInfo.InvariantCulture, $"default_pool_size = {PoolSize}"),
            "max_client_conn = 200",
            $"ignore_startup_parameters = {_ignoreStartupParameters}",
            $"logfile = {Path.Combine(_folder, "pgbouncer.log")}",
            $"pidfile = {Path.Combine(_folder, "pgbouncer.pid")}",
            ""));
        if (_asRoot)
        {
            await RunAsync("chown", ["-R", ServerUser, _folder]);
            await RunAsync("runuser", ["-u", ServerUser, "--", binary, "-d", "-q", ini]);
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
                await using var probe = new NpgsqlConnection(ConnectionString(server.Username!));
                await probe.OpenAsync();
                return;
            }
            catch (NpgsqlException) when (attempt < 100)
            {
                await Task.Delay(100);
            }
            catch (NpgsqlException e)
            {
                var log = Path.Combine(_folder, "pgbouncer.log");
                throw new InvalidOperationException($"PgBouncer on port {Port} does not answer: {(File.Exists(log) ? await File.ReadAllTextAsync(log) : "no log")}", e);
            }
        }
    }

    /// <summary>A connection string through PgBouncer to a database of the test server, as a login (pooled by Npgsql too, as applications do).</summary>
    public string ConnectionString(string username, string database = "postgres", string? password = null) =>
        new NpgsqlConnectionStringBuilder
        {
            Host = "127.0.0.1",
            Port = Port,
            Username = username,
            Password = password,
            Database = database,
            Timeout = 10,
            ApplicationName = "app through pgbouncer",
        }.ConnectionString;

    /// <summary>Lets a login through (trust authentication still names its users) and reloads PgBouncer.</summary>
    public async Task AllowAsync(string username)
    {
        await File.AppendAllTextAsync(_users, $"\"{username}\" \"\"\n");
        await RunAsync("kill", ["-HUP", await File.ReadAllTextAsync(Path.Combine(_folder, "pgbouncer.pid")) is var pid ? pid.Trim() : ""]);
        await Task.Delay(200); // the reload is asynchronous
    }

    public async ValueTask DisposeAsync()
    {
        var pidFile = Path.Combine(_folder, "pgbouncer.pid");
        if (File.Exists(pidFile))
        {
            await RunAsync("kill", [(await File.ReadAllTextAsync(pidFile)).Trim()]);
        }

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

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}

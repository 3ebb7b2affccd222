using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using ModelAsData.IntegrationTests.Postgres;
using ModelAsData.Sidecar;

namespace ModelAsData.IntegrationTests.Requests;

/// <summary>Shared steps of the online tests: a ready rf_iris, a sidecar whose request worker is armed, an external sidecar process.</summary>
internal static class RequestSupport
{
    public const string Setosa = """{"float_input": [5.1, 3.5, 1.4, 0.2]}""";
    public const string Versicolor = """{"float_input": [7.0, 3.2, 4.7, 1.4]}""";
    public const string Virginica = """{"float_input": [6.3, 3.3, 6.0, 2.5]}""";

    public static async Task<string> PushIrisAsync(PostgresDatabase database)
    {
        var model = Sql.UniqueName("iris");
        await new PostgresModelRegistry(database.DataSource).PushReadyAsync(model, "skl2onnx_rf_iris.onnx");
        return model;
    }

    /// <summary>Starts an in-process sidecar and waits until its request worker holds its ticket.</summary>
    public static async Task<RunningSidecar> StartSidecarAsync(PostgresDatabase database, string? http = null)
    {
        var options = new SidecarOptions { PollInterval = TimeSpan.FromMinutes(5), SidecarId = Sql.UniqueName("sidecar"), Http = http };
        var sidecar = await RunningSidecar.StartAsync(database.ConnectionString, options);
        await WaitForWorkerAsync(database, options.SidecarId);
        return sidecar;
    }

    public static Task WaitForWorkerAsync(PostgresDatabase database, string sidecarId, bool alive = true) =>
        Eventually.WaitForAsync(
            () => database.DataSource.ScalarAsync<bool>("SELECT EXISTS (SELECT FROM mad.request_workers w WHERE w.sidecar = @sidecarId AND mad.ticket_held(w.ticket))", new { sidecarId }),
            held => held == alive, $"sidecar {sidecarId}'s request worker to be {(alive ? "armed" : "gone")}");

    public static async Task<string> CallAsync(NpgsqlDataSource dataSource, string reference, string features)
    {
        await using var connection = await dataSource.OpenConnectionAsync(TestContext.Current.CancellationToken);
        await using var command = new NpgsqlCommand("CALL mad.predict($1, $2::jsonb, NULL)", connection) { Parameters = { new() { Value = reference }, new() { Value = features } } };
        return (string)(await command.ExecuteScalarAsync(TestContext.Current.CancellationToken))!;
    }

    public static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    /// <summary><c>dotnet mad.dll serve --db …</c> as a separate process (the CLI is built into the test output).</summary>
    public static Process StartExternalSidecar(string connectionString, string id)
    {
        var mad = Path.Combine(AppContext.BaseDirectory, "mad.dll");
        var start = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var arg in new[] { mad, "serve", "--db", connectionString, "--id", id })
        {
            start.ArgumentList.Add(arg);
        }

        var process = Process.Start(start)!;
        process.OutputDataReceived += (_, _) => { };
        process.ErrorDataReceived += (_, _) => { };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return process;
    }

    public static void Signal(Process process, string signal)
    {
        using var kill = Process.Start(new ProcessStartInfo("kill") { ArgumentList = { $"-{signal}", process.Id.ToString(System.Globalization.CultureInfo.InvariantCulture) } })!;
        kill.WaitForExit();
    }
}

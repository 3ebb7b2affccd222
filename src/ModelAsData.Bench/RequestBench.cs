using System.Diagnostics;
using System.Globalization;
using System.Text;
using Microsoft.ML.OnnxRuntime;
using ModelAsData.Postgres;
using ModelAsData.Postgres.Registry;
using Npgsql;
using Spectre.Console;

namespace ModelAsData.Bench;

/// <summary>
/// <c>mad bench --db "Host=…"</c>: online latency on PostgreSQL — CALL mad.predict, predict_async + NOTIFY, HTTP infer —
/// beside a prepared <c>SELECT 1</c> round trip and a raw in-process ONNX Runtime one-row call, all measured in the same
/// run, one request at a time, against a sidecar (<c>mad serve --http</c>) this bench starts as a separate process. Medians of the rounds' p50 / p99.
/// </summary>
internal sealed class RequestBench(string db, int requests, int rounds, IAnsiConsole console)
{
    public const string Model = "bench_rf_iris";

    private static readonly float[][] s_rows = [[5.1f, 3.5f, 1.4f, 0.2f], [7.0f, 3.2f, 4.7f, 1.4f], [6.3f, 3.3f, 6.0f, 2.5f], [5.9f, 3.0f, 5.1f, 1.8f]];

    public async Task RunAsync(bool markdown, CancellationToken cancellationToken)
    {
        var bytes = await File.ReadAllBytesAsync(Path.Combine(AppContext.BaseDirectory, "models", "skl2onnx_rf_iris.onnx"), cancellationToken);
        await using (var registry = await PostgresModelRegistry.OpenAsync(db, cancellationToken))
        {
            await registry.MigrateAsync(cancellationToken); // before the sidecar starts on the database
        }

        await using var dataSource = PostgresDataSource.Create(db, "mad bench");
        var port = SidecarProcess.FreePort();
        await using var sidecar = SidecarProcess.Start(db, $"bench:{Environment.ProcessId}", port);
        await using (var registry = await PostgresModelRegistry.OpenAsync(db, cancellationToken))
        {
            var pushed = await registry.PushAsync(Model, bytes, [], cancellationToken);
            await registry.WaitForValidationAsync(Model, pushed.Version, TimeSpan.FromSeconds(60), cancellationToken);
            await registry.SetAliasAsync(Model, "production", pushed.Version, cancellationToken: cancellationToken);
        }

        await sidecar.WaitForWorkerAsync(dataSource, TimeSpan.FromSeconds(30), cancellationToken);
        await KeepHistoryAsync(dataSource, cancellationToken);
        var http = new Uri($"http://127.0.0.1:{port.ToString(CultureInfo.InvariantCulture)}");
        // The HTTP door needs a bearer token: one acting as the bench's own login, revoked when the bench ends.
        var tokenLabel = $"bench-{Environment.ProcessId.ToString(CultureInfo.InvariantCulture)}";
        var token = await new Postgres.Tokens.PostgresHttpTokens(dataSource).CreateAsync(await CurrentUserAsync(dataSource, cancellationToken), tokenLabel, null, cancellationToken);
        var results = new List<(string Name, double P50, double P99, double PerSecond)>
        {
            await MeasureAsync("SELECT 1 (prepared, Npgsql)", SelectOne(dataSource), cancellationToken),
            await MeasureAsync("raw ONNX Runtime, 1 row", RawOrt(bytes), cancellationToken),
            await MeasureAsync("CALL mad.predict", Call(dataSource), cancellationToken),
            await MeasureAsync("mad.predict_async + NOTIFY mad_reply", Async(dataSource), cancellationToken),
            await MeasureAsync("HTTP infer (OIP v2, 1 row)", Http(http, token), cancellationToken),
        };
        await new Postgres.Tokens.PostgresHttpTokens(dataSource).RevokeAsync(tokenLabel, cancellationToken);
        var concurrency = new ConcurrencyBench(db, Model, rounds, ConcurrencyBench.DefaultDuration, console);

        var table = new Table().AddColumns("measurement", "p50 µs", "p99 µs", "requests/s (1 client)");
        foreach (var r in results)
        {
            table.AddRow(Markup.Escape(r.Name), Us(r.P50), Us(r.P99), r.PerSecond.ToString("N0", CultureInfo.InvariantCulture));
        }

        console.Write(table);
        var call = results[2];
        var web = results[4];
        console.MarkupLineInterpolated($"Goals: CALL p50 ≤ 1000 µs ({(call.P50 <= 1000 ? "met" : "missed")}), p99 ≤ 5000 µs ({(call.P99 <= 5000 ? "met" : "missed")}); HTTP p50 ≤ 500 µs ({(web.P50 <= 500 ? "met" : "missed")}).");
        if (markdown)
        {
            console.WriteLine();
            console.WriteLine($"{requests:N0} requests per round, {rounds} rounds, medians of the rounds' percentiles; {Environment.ProcessorCount} CPUs, {RuntimeInformation()}.");
            console.WriteLine("| measurement | p50 µs | p99 µs | requests/s (1 client) |");
            console.WriteLine("|---|---:|---:|---:|");
            results.ForEach(r => console.WriteLine($"| {r.Name} | {Us(r.P50)} | {Us(r.P99)} | {r.PerSecond.ToString("N0", CultureInfo.InvariantCulture)} |"));
        }

        console.MarkupLine("[bold]Online under concurrency[/]: CALL mad.predict and SELECT 1 from 1, 4, 16 and 64 clients, directly and through PgBouncer.");
        try
        {
            await concurrency.RunAsync(markdown, cancellationToken);
        }
        catch (PostgresException e)
        {
            // "No sidecar is running" from a bench that started one: say what became of it.
            throw new Core.ModelAsDataException(Core.ErrorCode.Database, $"{e.SqlState}: {e.MessageText} {sidecar.Describe()}", e);
        }
    }

    /// <summary>
    /// Answered requests as a busy day leaves them (mad.requests keeps them for request_retention_hours, 24 by
    /// default): the door must not slow down as they pile up. A claim that scanned them all took a CALL from ~4 ms to
    /// 60–80 ms at 40,000 (041); a bench on an empty table could not see it.
    /// </summary>
    private async Task KeepHistoryAsync(NpgsqlDataSource dataSource, CancellationToken cancellationToken)
    {
        console.MarkupLineInterpolated($"[grey]a day's history: {HistoryRequests:N0} answered requests in mad.requests…[/]");
        // A run's history replaces the last run's, so the table holds one day's worth however often the bench runs.
        await using (var forget = dataSource.CreateCommand("DELETE FROM mad.requests WHERE sidecar = 'bench:history'"))
        {
            forget.CommandTimeout = 0;
            await forget.ExecuteNonQueryAsync(cancellationToken);
        }

        await using var command = dataSource.CreateCommand(HistorySql);
        command.Parameters.Add(new() { Value = Model });
        command.Parameters.Add(new() { Value = HistoryRequests });
        command.CommandTimeout = 0;
        await command.ExecuteNonQueryAsync(cancellationToken);
        await using var analyze = dataSource.CreateCommand("ANALYZE mad.requests");
        await analyze.ExecuteNonQueryAsync(cancellationToken);
    }

    /// <summary>How many answered requests <see cref="KeepHistoryAsync"/> leaves in the table: ~3 per second for a day.</summary>
    private const int HistoryRequests = 250_000;

    private const string HistorySql = """
        INSERT INTO mad.requests (kind, reference, model, version, features, status, result, sidecar, created_at, claimed_at, answered_at, expires_at)
        SELECT 'call', $1, $1, (SELECT max(v.version) FROM mad.model_versions v WHERE v.model = $1), '{"float_input": [5.1, 3.5, 1.4, 0.2]}', 'done',
               '{"label": 0}', 'bench:history', t, t, t, t + interval '30 seconds'
        FROM (SELECT clock_timestamp() - (i * interval '1 hour' * 23 / $2) AS t FROM generate_series(1, $2) i) h
        """;

    private async Task<(string, double, double, double)> MeasureAsync(string name, Func<int, Task> once, CancellationToken cancellationToken)
    {
        console.MarkupLineInterpolated($"[grey]{name}…[/]");
        for (var i = 0; i < Math.Min(200, requests); i++)
        {
            await once(i); // warm up
        }

        var p50s = new List<double>();
        var p99s = new List<double>();
        var rates = new List<double>();
        var latencies = new double[requests];
        for (var round = 0; round < rounds; round++)
        {
            cancellationToken.ThrowIfCancellationRequested();
            var started = Stopwatch.GetTimestamp();
            for (var i = 0; i < requests; i++)
            {
                var t = Stopwatch.GetTimestamp();
                await once(i);
                latencies[i] = Stopwatch.GetElapsedTime(t).TotalMicroseconds;
            }

            rates.Add(requests / Stopwatch.GetElapsedTime(started).TotalSeconds);
            Array.Sort(latencies);
            p50s.Add(latencies[requests / 2]);
            p99s.Add(latencies[Math.Min(requests - 1, (int)(requests * 0.99))]);
        }

        return (name, Median(p50s), Median(p99s), Median(rates));
    }

    private static Func<int, Task> SelectOne(NpgsqlDataSource dataSource)
    {
        var connection = dataSource.OpenConnection();
        var command = new NpgsqlCommand("SELECT 1", connection);
        command.Prepare();
        return async _ => await command.ExecuteScalarAsync();
    }

    private static Func<int, Task> RawOrt(byte[] bytes)
    {
        var options = new SessionOptions { IntraOpNumThreads = 1, InterOpNumThreads = 1 };
        options.AddSessionConfigEntry("session.intra_op.allow_spinning", "0");
        var session = new InferenceSession(bytes, options);
        var input = new float[4];
        return i =>
        {
            s_rows[i % s_rows.Length].CopyTo(input, 0);
            using var value = OrtValue.CreateTensorValueFromMemory(input, [1, 4]);
            using var outputs = session.Run(new RunOptions(), ["float_input"], [value], ["output_label"]);
            return Task.CompletedTask;
        };
    }

    private static Func<int, Task> Call(NpgsqlDataSource dataSource)
    {
        var connection = dataSource.OpenConnection();
        var command = new NpgsqlCommand("CALL mad.predict($1, $2::jsonb, NULL)", connection) { Parameters = { new() { Value = Model }, new() { Value = "" } } };
        return async i =>
        {
            command.Parameters[1].Value = Features(i);
            await command.ExecuteScalarAsync();
        };
    }

    private static Func<int, Task> Async(NpgsqlDataSource dataSource)
    {
        var connection = new NpgsqlConnection(new NpgsqlConnectionStringBuilder(dataSource.ConnectionString) { Pooling = false }.ConnectionString);
        connection.Open();
        using (var listen = new NpgsqlCommand("LISTEN mad_reply", connection))
        {
            listen.ExecuteNonQuery();
        }

        string? last = null;
        connection.Notification += (_, n) => last = n.Payload;
        var submit = new NpgsqlCommand("SELECT mad.predict_async($1, $2::jsonb)", connection) { Parameters = { new() { Value = Model }, new() { Value = "" } } };
        var read = new NpgsqlCommand("SELECT result FROM mad.requests WHERE id = $1", connection) { Parameters = { new() { Value = 0L } } };
        return async i =>
        {
            submit.Parameters[1].Value = Features(i);
            var id = (long)(await submit.ExecuteScalarAsync())!;
            var expected = $"{{\"id\" : {id.ToString(CultureInfo.InvariantCulture)}, ";
            while (last is null || !last.StartsWith(expected, StringComparison.Ordinal))
            {
                await connection.WaitAsync();
            }

            read.Parameters[0].Value = id;
            await read.ExecuteScalarAsync();
        };
    }

    private static async Task<string> CurrentUserAsync(NpgsqlDataSource dataSource, CancellationToken cancellationToken)
    {
        await using var command = dataSource.CreateCommand("SELECT current_user");
        return (string)(await command.ExecuteScalarAsync(cancellationToken))!;
    }

    private static Func<int, Task> Http(Uri address, string token)
    {
        var client = new HttpClient { BaseAddress = address };
        client.DefaultRequestHeaders.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", token);
        return async i =>
        {
            var row = s_rows[i % s_rows.Length];
            var body = $"{{\"inputs\": [{{\"name\": \"float_input\", \"shape\": [1, 4], \"datatype\": \"FP32\", \"data\": [{string.Join(", ", row.Select(v => v.ToString(CultureInfo.InvariantCulture)))}]}}]}}";
            using var response = await client.PostAsync($"/v2/models/{Model}/infer", new StringContent(body, Encoding.UTF8, "application/json"));
            response.EnsureSuccessStatusCode();
            await response.Content.ReadAsStringAsync();
        };
    }

    private static string Features(int i) =>
        $"{{\"float_input\": [{string.Join(", ", s_rows[i % s_rows.Length].Select(v => v.ToString(CultureInfo.InvariantCulture)))}]}}";

    private static double Median(List<double> values)
    {
        values.Sort();
        return values[values.Count / 2];
    }

    private static string Us(double us) => us.ToString("N0", CultureInfo.InvariantCulture);

    private static string RuntimeInformation() => System.Runtime.InteropServices.RuntimeInformation.FrameworkDescription;
}

using System.Diagnostics;
using System.Globalization;
using ModelAsData.Postgres;
using Npgsql;
using Spectre.Console;

namespace ModelAsData.Bench;

/// <summary>
/// The online section's concurrency table (issue 13): 1, 4, 16 and 64 clients, each on a connection of its own,
/// calling <c>CALL mad.predict</c> back to back for a fixed time, directly and through a PgBouncer in transaction
/// mode that the bench starts itself (or says it skips that column when <c>pgbouncer</c> is not installed), beside
/// <c>SELECT 1</c> at the same concurrency and over the same route. Direct clients use prepared statements, as
/// <c>pgbench -M prepared</c> does; clients through PgBouncer use Npgsql's unnamed statements, the only kind
/// PgBouncer before 1.21 carries in transaction mode. Rounds alternate the order of the measurements; each figure is
/// the median over rounds. Needs a running sidecar (the online section's).
/// </summary>
internal sealed class ConcurrencyBench(string db, string model, int rounds, TimeSpan duration, IAnsiConsole console)
{
    /// <summary>How long each cell of each round calls.</summary>
    public static readonly TimeSpan DefaultDuration = TimeSpan.FromSeconds(3);

    private static readonly int[] s_clients = [1, 4, 16, 64];
    private static readonly string[] s_features =
        ["""{"float_input": [5.1, 3.5, 1.4, 0.2]}""", """{"float_input": [7.0, 3.2, 4.7, 1.4]}""", """{"float_input": [6.3, 3.3, 6.0, 2.5]}"""];

    public async Task RunAsync(bool markdown, CancellationToken cancellationToken)
    {
        var routes = new List<(string Name, string ConnectionString, bool Prepare)> { ("direct", db, true) };
        PgBouncerProcess? pgBouncer = null;
        if (PgBouncerProcess.FindBinary() is { } binary)
        {
            pgBouncer = await PgBouncerProcess.StartAsync(binary, db, cancellationToken);
            routes.Add(("PgBouncer", pgBouncer.ConnectionString, false));
            console.MarkupLineInterpolated($"[grey]PgBouncer {binary}: pool_mode = transaction, default_pool_size = {PgBouncerProcess.PoolSize}.[/]");
        }
        else
        {
            console.MarkupLine("[yellow]pgbouncer is not installed: skipping the PgBouncer column (apt-get install pgbouncer to measure it).[/]");
        }

        try
        {
            var cells = new Dictionary<(string Route, int Clients, bool Call), List<Run>>();
            for (var round = 0; round < rounds; round++)
            {
                console.MarkupLineInterpolated($"[grey]concurrency round {round + 1} of {rounds}…[/]");
                // Alternate: even rounds go up in clients and CALL first, odd ones down and SELECT 1 first.
                var levels = round % 2 == 0 ? s_clients : [.. s_clients.Reverse()];
                foreach (var clients in levels)
                {
                    foreach (var (name, connectionString, prepare) in round % 2 == 0 ? routes : [.. Enumerable.Reverse(routes)])
                    {
                        foreach (var call in round % 2 == 0 ? new[] { true, false } : [false, true])
                        {
                            var run = await MeasureAsync(connectionString, clients, call, prepare, cancellationToken);
                            cells.TryAdd((name, clients, call), []);
                            cells[(name, clients, call)].Add(run);
                        }
                    }
                }
            }

            Print(routes.Select(r => r.Name).ToList(), cells, markdown);
        }
        finally
        {
            if (pgBouncer is not null)
            {
                await pgBouncer.DisposeAsync();
            }
        }
    }

    private void Print(List<string> routes, Dictionary<(string Route, int Clients, bool Call), List<Run>> cells, bool markdown)
    {
        var rows = new List<string[]>();
        foreach (var route in routes)
        {
            foreach (var clients in s_clients)
            {
                var call = Run.Median(cells[(route, clients, true)]);
                var select = Run.Median(cells[(route, clients, false)]);
                rows.Add([route, clients.ToString(CultureInfo.InvariantCulture), N(call.PerSecond), Ms(call.P50), Ms(call.P99), call.Errors.ToString(CultureInfo.InvariantCulture),
                    N(select.PerSecond), Ms(select.P50), Ms(select.P99), $"{call.P50 / select.P50:0.0}×"]);
            }
        }

        string[] headers = ["route", "clients", "CALL calls/s", "CALL p50 ms", "CALL p99 ms", "CALL errors", "SELECT 1 calls/s", "SELECT 1 p50 ms", "SELECT 1 p99 ms", "CALL p50 ÷ SELECT 1 p50"];
        var table = new Table().AddColumns(headers);
        rows.ForEach(r => table.AddRow(r.Select(Markup.Escape).ToArray()));
        console.Write(table);

        var direct = routes[0];
        var one = Run.Median(cells[(direct, 1, true)]);
        var sixteen = Run.Median(cells[(direct, 16, true)]);
        var select1 = Run.Median(cells[(direct, 1, false)]);
        var goals = new[]
        {
            $"direct, 1 client: CALL p50 {Ms(one.P50)} ms = {one.P50 / select1.P50:0.0}× SELECT 1 p50 (goal ≤ 12×: {(one.P50 / select1.P50 <= 12 ? "met" : "missed")})",
            $"direct, 16 clients: {sixteen.PerSecond / one.PerSecond:0.0}× one client's calls/s (goal ≥ 4×: {(sixteen.PerSecond / one.PerSecond >= 4 ? "met" : "missed")})",
            $"direct, 16 clients: CALL p99 {Ms(sixteen.P99)} ms = {sixteen.P99 / one.P50:0.0}× one client's p50 (goal ≤ 15×: {(sixteen.P99 / one.P50 <= 15 ? "met" : "missed")})",
        };
        foreach (var goal in goals)
        {
            console.WriteLine(goal);
        }

        if (markdown)
        {
            console.WriteLine();
            console.WriteLine($"{rounds} rounds of {duration.TotalSeconds:0} s per cell, medians; {Environment.ProcessorCount} CPUs; PgBouncer in pool_mode = transaction, default_pool_size = {PgBouncerProcess.PoolSize}.");
            console.WriteLine($"| {string.Join(" | ", headers)} |");
            console.WriteLine($"|---|{string.Concat(Enumerable.Repeat("---:|", headers.Length - 1))}");
            rows.ForEach(r => console.WriteLine($"| {string.Join(" | ", r)} |"));
            console.WriteLine();
            foreach (var goal in goals)
            {
                console.WriteLine($"- {goal}");
            }
        }
    }

    /// <summary>
    /// <paramref name="clients"/> connections, each calling back to back for <see cref="duration"/>; every latency kept.
    /// A call that fails counts as an error (and the client goes on).
    /// </summary>
    private async Task<Run> MeasureAsync(string connectionString, int clients, bool call, bool prepare, CancellationToken cancellationToken)
    {
        var builder = new NpgsqlConnectionStringBuilder(PostgresConnectionString.Parse(connectionString).ConnectionString) { Pooling = false, ApplicationName = "mad bench clients" };
        var connections = await Task.WhenAll(Enumerable.Range(0, clients).Select(async _ =>
        {
            var connection = new NpgsqlConnection(builder.ConnectionString);
            try
            {
                await connection.OpenAsync(cancellationToken);
            }
            catch (PostgresException e) when (e.SqlState == PostgresErrorCodes.TooManyConnections)
            {
                await connection.DisposeAsync();
                throw new Core.ModelAsDataException(Core.ErrorCode.Database,
                    $"The concurrency table opens up to {s_clients[^1]} client connections beside the sidecar's, and the server refused one ({e.MessageText}): " +
                    "raise max_connections (e.g. ALTER SYSTEM SET max_connections = 200, then restart PostgreSQL) or bench a server that allows them.", e);
            }

            return connection;
        }));
        try
        {
            var commands = new NpgsqlCommand[clients];
            for (var i = 0; i < clients; i++)
            {
                commands[i] = call
                    ? new NpgsqlCommand("CALL mad.predict($1, $2::jsonb, NULL)", connections[i]) { Parameters = { new() { Value = model }, new() { Value = s_features[0] } } }
                    : new NpgsqlCommand("SELECT 1", connections[i]);
                if (prepare)
                {
                    await commands[i].PrepareAsync(cancellationToken);
                }
            }

            await Task.WhenAll(commands.Select(async c =>
            {
                for (var i = 0; i < 20; i++)
                {
                    await c.ExecuteScalarAsync(cancellationToken); // warm up
                }
            }));

            var latencies = new List<double>[clients];
            var errors = 0L;
            var started = Stopwatch.GetTimestamp();
            var stopAt = started + (long)(duration.TotalSeconds * Stopwatch.Frequency);
            await Task.WhenAll(Enumerable.Range(0, clients).Select(client => Task.Run(async () =>
            {
                var mine = latencies[client] = new List<double>(4096);
                var command = commands[client];
                for (var i = client; Stopwatch.GetTimestamp() < stopAt; i++)
                {
                    if (call)
                    {
                        command.Parameters[1].Value = s_features[i % s_features.Length];
                    }

                    var t = Stopwatch.GetTimestamp();
                    try
                    {
                        await command.ExecuteScalarAsync(cancellationToken);
                        mine.Add(Stopwatch.GetElapsedTime(t).TotalMilliseconds);
                    }
                    catch (PostgresException)
                    {
                        Interlocked.Increment(ref errors);
                    }
                }
            }, cancellationToken)));
            var elapsed = Stopwatch.GetElapsedTime(started).TotalSeconds;
            var all = latencies.SelectMany(l => l).ToList();
            var percentiles = all.Count > 0 ? Percentiles.Of(all) : new Percentiles(double.NaN, double.NaN, double.NaN);
            return new Run(all.Count / elapsed, percentiles.P50, percentiles.P99, errors);
        }
        finally
        {
            foreach (var connection in connections)
            {
                await connection.DisposeAsync();
            }
        }
    }

    private static string N(double perSecond) => perSecond.ToString("N0", CultureInfo.InvariantCulture);

    private static string Ms(double ms) => ms.ToString(ms < 1 ? "0.000" : "0.00", CultureInfo.InvariantCulture);

    /// <summary>One cell of one round: completed calls per second, latency percentiles (ms) and errors.</summary>
    private sealed record Run(double PerSecond, double P50, double P99, long Errors)
    {
        public static Run Median(List<Run> runs) =>
            new(Mid(runs.Select(r => r.PerSecond)), Mid(runs.Select(r => r.P50)), Mid(runs.Select(r => r.P99)), runs.Sum(r => r.Errors));

        private static double Mid(IEnumerable<double> values)
        {
            var sorted = values.Order().ToArray();
            return sorted[sorted.Length / 2];
        }
    }
}

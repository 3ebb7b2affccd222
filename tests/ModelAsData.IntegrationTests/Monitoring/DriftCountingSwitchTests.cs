using System.Globalization;
using ModelAsData.IntegrationTests.Batch;
using ModelAsData.IntegrationTests.Requests;
using ModelAsData.Postgres.Jobs;
using ModelAsData.Postgres.Monitoring;

namespace ModelAsData.IntegrationTests.Monitoring;

/// <summary>
/// The switch of 026_4: with <c>drift_counting = 0</c> no door (refresh, stream, online) writes profile counts, though
/// the version has a baseline; turned on again, each counts again from its next unit of work.
/// </summary>
public sealed class DriftCountingSwitchTests(PostgresDatabase database) : DatabaseTests(database)
{
    private const int Requests = 30;

    [Fact(Timeout = 240_000)]
    public async Task Off_no_door_counts_and_on_again_every_door_counts()
    {
        var (model, tables) = await BatchTables.ReadyModelAsync(Database);
        var training = Sql.UniqueName("training");
        await DriftRows.CreatePostgresAsync(Database.DataSource, training, 500, seed: 41);
        await BatchTables.CreateAsync(tables, Sql.UniqueName("mapping"), training, model); // maps the inputs; never refreshed
        await Database.DataSource.ExecuteAsync($"SELECT mad.set_baseline(@model, 1, 'public.{training}')", new { model });
        var online = OnlineProfileCounts.TableOf(model);
        try
        {
            await SwitchAsync(on: false);
            await using var sidecar = await HttpDoorSupport.StartAsync(Database);

            var off = await DoorsScoreAsync(tables, model, training, firstKey: 501);
            Assert.Equal((0, 0, 0), off);

            await SwitchAsync(on: true);
            // The doors read the switch with each unit of work's counter; a stream plan and the log writer's view
            // of a version are kept up to 5 s (OnlineProfileCounts.MaxAge), so the next ones start after that.
            await Task.Delay(OnlineProfileCounts.MaxAge + TimeSpan.FromSeconds(1), Ct);

            var on = await DoorsScoreAsync(tables, model, training, firstKey: 601);
            Assert.Equal((600, 100, Requests), on); // every row the refresh scored, the stream's new rows, each request
        }
        finally
        {
            await SwitchAsync(on: true);
        }
    }

    /// <summary>
    /// Each door scores: a new prediction table over the source is refreshed (every row), 100 new source rows reach it
    /// through its stream, and <see cref="Requests"/> CALLs are answered and logged. Returns the rows each door counted.
    /// </summary>
    private async Task<(long Refresh, long Stream, long Online)> DoorsScoreAsync(PostgresPredictionTables tables, string model, string source, int firstKey)
    {
        var name = Sql.UniqueName("scores");
        await BatchTables.CreateAsync(tables, name, source, model);
        await tables.RefreshAsync(name, cancellationToken: Ct);
        var refresh = await CountedAsync(name);

        await Database.DataSource.ExecuteAsync("SELECT mad.watch(@name)", new { name });
        await Database.DataSource.ExecuteAsync($"""
            INSERT INTO public.{source} SELECT g, 4.4 + (g % 31) * 0.1, 2.1 + (g % 19) * 0.1, 1.2 + (g % 53) * 0.1, 0.2 + (g % 23) * 0.1
            FROM generate_series(@firstKey, @firstKey + 99) g
            """, new { firstKey });
        await Eventually.WaitForAsync(() => Database.DataSource.ScalarAsync<long>($"SELECT count(*) FROM mad_out.{name} WHERE id >= @firstKey", new { firstKey }),
            n => n == 100, "the stream to score the new rows", TimeSpan.FromSeconds(60));
        var stream = await CountedAsync(name) - refresh;

        var online = OnlineProfileCounts.TableOf(model);
        var (logged, counted) = (await LoggedAsync(model), await CountedAsync(online));
        foreach (var row in DriftRows.Make(Requests, seed: 41))
        {
            await RequestSupport.CallAsync(Database.DataSource, model, string.Create(CultureInfo.InvariantCulture,
                $"{{\"float_input\": [{row.SepalLength}, {row.SepalWidth}, {row.PetalLength}, {row.PetalWidth}]}}"));
        }

        // The log writer counts a batch in the transaction that writes its log rows: once they are in, it has decided.
        await Eventually.WaitForAsync(() => LoggedAsync(model), n => n == logged + Requests, "the prediction log to hold the requests", TimeSpan.FromSeconds(60));
        return (refresh, stream, await CountedAsync(online) - counted);
    }

    private Task SwitchAsync(bool on) =>
        Database.DataSource.ExecuteAsync("UPDATE mad.settings SET value = @value WHERE name = 'drift_counting'", new { value = on ? "1" : "0" });

    private Task<long> LoggedAsync(string model) =>
        Database.DataSource.ScalarAsync<long>("SELECT count(*) FROM mad.prediction_log WHERE model = @model", new { model });

    /// <summary>Rows counted for one input column of the table (or 'online:model'), all hours.</summary>
    private Task<long> CountedAsync(string table) =>
        Database.DataSource.ScalarAsync<long>(
            "SELECT coalesce(sum(count), 0) FROM mad.profile_counts WHERE prediction_table = @table AND kind = 'input' AND column_name = 'sepal_length'",
            new { table });
}

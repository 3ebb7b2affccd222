using ModelAsData.IntegrationTests.Batch;
using ModelAsData.Postgres.Jobs;

namespace ModelAsData.IntegrationTests.Outcomes;

/// <summary>
/// mad_history.&lt;name&gt; keeps what was served: a stream overwriting a key's row and a refresh replacing the table
/// both leave the earlier prediction, which a label observed before the change still grades.
/// </summary>
public sealed class HistoryTests(PostgresDatabase database) : DatabaseTests(database)
{
    [Fact(Timeout = 60_000)]
    public async Task A_label_grades_the_prediction_in_force_when_it_was_observed_after_a_stream_overwrote_the_row()
    {
        var (name, _, outcomes, _) = await OutcomeTables.CreateAsync(Database.DataSource);
        await Database.DataSource.ExecuteAsync($"INSERT INTO mad_out.{name} (id, label, model_version, scored_at) VALUES (1, 2, 1, '2026-11-02 10:00+00'), (2, 1, 1, '2026-11-02 10:00+00')");
        await Database.DataSource.ExecuteAsync($"UPDATE mad_out.{name} SET label = 0, scored_at = '2026-11-05 10:00+00' WHERE id = 1");
        await Database.DataSource.ExecuteAsync($"INSERT INTO public.{outcomes} VALUES (1, '2', '2026-11-03 00:00+00')");

        var history = await Database.DataSource.QueryAsync<(string Key, string Label)>($"SELECT key, outputs ->> 'label' FROM mad_history.{name} ORDER BY key, scored_at");
        var rows = await Database.DataSource.QueryAsync<(DateTime Start, string Metric, double? Value, long N, double Coverage)>(
            $"SELECT window_start, metric, value, n_labeled, coverage FROM mad.performance('{name}') WHERE metric = 'accuracy' ORDER BY window_start");

        Assert.Equal([("1", "2"), ("1", "0"), ("2", "1")], history);
        Assert.Equal(2, rows.Count);
        Assert.Equal((2, 1.0, 1L, 0.5), (rows[0].Start.Day, rows[0].Value, rows[0].N, rows[0].Coverage));   // the served 2 was right
        Assert.Equal((5, (double?)null, 0L, 0.0), (rows[1].Start.Day, rows[1].Value, rows[1].N, rows[1].Coverage));
    }

    [Fact(Timeout = 120_000)]
    public async Task A_refresh_adds_its_rows_to_the_history_and_keeps_the_earlier_ones()
    {
        await using var sidecar = await RunningSidecar.StartAsync(Database.ConnectionString);
        var (name, _, _, _) = await OutcomeTables.CreateAsync(Database.DataSource);
        var tables = new PostgresPredictionTables(new PostgresModelRegistry(Database.DataSource), TimeSpan.FromMilliseconds(50));

        await tables.RefreshAsync(name, cancellationToken: Ct);
        await tables.RefreshAsync(name, cancellationToken: Ct);
        await Database.DataSource.ExecuteAsync($"INSERT INTO mad_out.{name} (id, label, model_version, scored_at) VALUES (99, 1, 1, now())");

        Assert.Equal(21L, await Database.DataSource.ScalarAsync<long>($"SELECT count(*) FROM mad_history.{name}"));
        Assert.Equal(2L, await Database.DataSource.ScalarAsync<long>($"SELECT count(*) FROM mad_history.{name} WHERE key = '1'"));
    }
}

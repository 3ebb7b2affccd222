using ModelAsData.IntegrationTests.Postgres;
using ModelAsData.Postgres.Jobs;
using static ModelAsData.IntegrationTests.Streaming.StreamingTables;

namespace ModelAsData.IntegrationTests.Batch;

/// <summary>
/// Batches of fixed-size rows in which ONNX Runtime fails on some rows (docs/TENSORS.md): gather_ids.onnx looks ids
/// up in a table of 10 rows, so an id of 10 or more fails in Gather; gather_one.onnx is the same graph exported with
/// a fixed batch of 1. At refresh and at stream, the rows that hold such an id get their own error and every other
/// row of the batch is scored, with either model, to the same values.
/// </summary>
public sealed class FixedBatchTableTests(PostgresDatabase database) : DatabaseTests(database)
{
    [Fact(Timeout = 120_000)]
    public async Task A_bad_row_gets_its_own_error_at_refresh_and_stream_with_a_dynamic_and_a_fixed_batch()
    {
        await using var sidecar = await RunningSidecar.StartAsync(Database.ConnectionString);
        var registry = new PostgresModelRegistry(Database.DataSource);
        var tables = new PostgresPredictionTables(registry, TimeSpan.FromMilliseconds(50));
        var source = Sql.UniqueName("pairs");
        // 200 rows, so a refresh batch holds many; ids 5 and 77 are past the table of 10.
        await Database.DataSource.ExecuteAsync($$"""
            CREATE TABLE public.{{source}} (id bigint PRIMARY KEY, ids bigint[]);
            INSERT INTO public.{{source}} SELECT g, ARRAY[g % 10, (g * 3) % 10] FROM generate_series(1, 200) g;
            UPDATE public.{{source}} SET ids = '{3, 40}' WHERE id = 5;
            UPDATE public.{{source}} SET ids = '{12, 1}' WHERE id = 77;
            """);
        var names = new List<string>();
        foreach (var file in new[] { "gather_ids.onnx", "gather_one.onnx" })
        {
            var model = Sql.UniqueName(Path.GetFileNameWithoutExtension(file));
            var pushed = await registry.PushReadyAsync(model, Path.Combine(AppContext.BaseDirectory, "TestData", file));
            await registry.WaitForValidationAsync(model, pushed.Version, TimeSpan.FromSeconds(30), Ct);
            var name = Sql.UniqueName("lookups");
            await Database.DataSource.ExecuteAsync($"SELECT mad.create_prediction_table('{name}', 'public.{source}', '{{id}}', '{model}')");

            var result = await tables.RefreshAsync(name, cancellationToken: Ct);

            Assert.Equal((200L, 2L), (result.Rows, result.Failed));
            var failed = await Database.DataSource.QueryAsync<(long Id, string Error, float? Score)>($"SELECT id, error, score FROM mad_out.{name} WHERE error IS NOT NULL ORDER BY id");
            Assert.Equal([5L, 77L], failed.Select(f => f.Id));
            Assert.All(failed, f => Assert.StartsWith("ONNX Runtime could not score this row: ", f.Error, StringComparison.Ordinal));
            Assert.All(failed, f => Assert.Null(f.Score));
            Assert.Contains("idx=40", failed[0].Error, StringComparison.Ordinal);
            names.Add(name);
        }

        // Both models agree on every other row (a batch and a row alone may differ in a float sum's last bit).
        var pairs = await Database.DataSource.QueryAsync<(float Batched, float Alone)>(
            $"SELECT a.score, b.score FROM mad_out.{names[0]} a JOIN mad_out.{names[1]} b USING (id) WHERE a.error IS NULL");
        Assert.Equal(198, pairs.Count);
        Assert.All(pairs, p => Assert.Equal(p.Batched, p.Alone, 1e-5f));
        // id 1 looks up table rows 1 and 3: 0.3 + 0.4 + 0.5 + 0.9 + 1.0 + 1.1.
        Assert.Equal(4.2f, (await Database.DataSource.QueryAsync<float>($"SELECT score FROM mad_out.{names[0]} WHERE id = 1")).Single(), 1e-5f);

        // The stream door: rows inserted in one statement, one of them past the table, scored in one pass.
        foreach (var name in names)
        {
            await Database.DataSource.ExecuteAsync("SELECT mad.watch(@name)", new { name });
        }

        await Database.DataSource.ExecuteAsync($"INSERT INTO public.{source} VALUES (201, '{{1, 2}}'), (202, '{{99, 2}}'), (203, '{{4, 4}}')");
        foreach (var name in names)
        {
            await WaitForAsync(Database, $"SELECT count(*) FROM mad_out.{name} WHERE id > 200", 3);
            var streamed = await Database.DataSource.QueryAsync<(long Id, float? Score, string? Error)>($"SELECT id, score, error FROM mad_out.{name} WHERE id > 200 ORDER BY id");
            Assert.Equal([201L, 203L], streamed.Where(r => r.Error is null && r.Score is not null).Select(r => r.Id));
            Assert.StartsWith("ONNX Runtime could not score this row: ", streamed[1].Error, StringComparison.Ordinal);
            Assert.Equal(7.8f, streamed[2].Score!.Value, 1e-5f);
        }
    }
}

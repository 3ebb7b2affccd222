using Microsoft.ML.OnnxRuntime;
using ModelAsData.IntegrationTests.Postgres;
using ModelAsData.Postgres.Jobs;
using static ModelAsData.IntegrationTests.Streaming.StreamingTables;

namespace ModelAsData.IntegrationTests.Batch;

/// <summary>
/// Tensors in tables (docs/TENSORS.md): the PyTorch models of tests/models bound to tables with array and bytea
/// columns, refreshed and streamed by an in-process sidecar, every prediction compared with ONNX Runtime's own
/// answer on the same tensor (its C# API, nothing of ModelAsData's).
/// </summary>
public sealed class TensorTableTests(PostgresDatabase database) : DatabaseTests(database)
{
    private static string Made(string file) => Path.Combine(AppContext.BaseDirectory, "TestData", file);

    [Fact(Timeout = 90_000)]
    public async Task Uint8_images_in_a_bytea_column_are_scored_by_the_cnn_as_onnx_runtime_scores_them()
    {
        await using var sidecar = await RunningSidecar.StartAsync(Database.ConnectionString);
        var (model, tables) = await ReadyAsync("cnn_uint8.onnx");
        var source = Sql.UniqueName("images");
        await Database.DataSource.ExecuteAsync($"CREATE TABLE public.{source} (id bigint PRIMARY KEY, image bytea)");
        var images = Enumerable.Range(1, 40).Select(i => Enumerable.Range(0, 784).Select(p => (byte)((p * i * 7 + i) % 256)).ToArray()).ToArray();
        await Database.DataSource.ExecuteAsync($"INSERT INTO public.{source} SELECT * FROM unnest(@ids, @images)",
            new { ids = Enumerable.Range(1, 40).Select(i => (long)i).ToArray(), images });
        var name = Sql.UniqueName("digits");

        await Database.DataSource.ExecuteAsync($"SELECT mad.create_prediction_table('{name}', 'public.{source}', '{{id}}', '{model}')");
        var result = await tables.RefreshAsync(name, cancellationToken: Ct);

        Assert.Equal(40, result.Rows);
        Assert.Equal(0, result.Failed);
        Assert.Equal("real[]", await Database.DataSource.ScalarAsync<string>($"SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = 'mad_out.{name}'::regclass AND attname = 'features'"));
        var rows = await Database.DataSource.QueryAsync<(long Id, float[] Logits, float[] Features, string Dims)>($"""
            SELECT id, ARRAY[logits_0, logits_1, logits_2, logits_3, logits_4, logits_5, logits_6, logits_7, logits_8, logits_9],
                   ARRAY(SELECT unnest(features)), array_dims(features)
            FROM mad_out.{name} ORDER BY id
            """);
        using var session = new InferenceSession(Made("cnn_uint8.onnx"));
        using var input = OrtValue.CreateTensorValueFromMemory(images.SelectMany(b => b).ToArray(), [40, 1, 28, 28]);
        using var expected = session.Run(new RunOptions(), ["image"], [input], ["logits", "features"]);
        var logits = expected[0].GetTensorDataAsSpan<float>().ToArray();
        var maps = expected[1].GetTensorDataAsSpan<float>().ToArray();
        Assert.Equal(40, rows.Count);
        foreach (var row in rows)
        {
            var r = (int)row.Id - 1;
            Assert.Equal(logits.AsSpan(r * 10, 10).ToArray(), row.Logits);
            Assert.Equal(maps.AsSpan(r * 196, 196).ToArray(), row.Features);
            Assert.Equal("[1:4][1:7][1:7]", row.Dims);
        }
    }

    [Fact(Timeout = 90_000)]
    public async Task Token_ids_of_different_lengths_are_grouped_by_length_and_each_row_matches_onnx_runtime_alone()
    {
        await using var sidecar = await RunningSidecar.StartAsync(Database.ConnectionString);
        var (model, tables) = await ReadyAsync("token_mean.onnx");
        var source = Sql.UniqueName("sentences");
        await Database.DataSource.ExecuteAsync($"""
            CREATE TABLE public.{source} (id bigint PRIMARY KEY, tokens bigint[]);
            INSERT INTO public.{source} SELECT g, ARRAY(SELECT (g * 7 + t * 3) % 100 FROM generate_series(1, 1 + g % 9) t) FROM generate_series(1, 300) g;
            """);
        var name = Sql.UniqueName("sentiment");

        await Database.DataSource.ExecuteAsync($$"""SELECT mad.create_prediction_table('{{name}}', 'public.{{source}}', '{id}', '{{model}}', '{"ids": "tokens"}')""");
        var result = await tables.RefreshAsync(name, cancellationToken: Ct);

        Assert.Equal(300, result.Rows);
        Assert.Equal(0, result.Failed);
        var rows = await Database.DataSource.QueryAsync<(long Id, long[] Tokens, float S0, float S1, float S2, float[] TokenScores)>(
            $"SELECT s.id, s.tokens, p.scores_0, p.scores_1, p.scores_2, p.token_scores FROM public.{source} s JOIN mad_out.{name} p USING (id) ORDER BY id");
        using var session = new InferenceSession(Made("token_mean.onnx"));
        foreach (var row in rows)
        {
            using var input = OrtValue.CreateTensorValueFromMemory(row.Tokens, [1, row.Tokens.Length]);
            using var alone = session.Run(new RunOptions(), ["ids"], [input], ["scores", "token_scores"]);
            var scores = alone[0].GetTensorDataAsSpan<float>().ToArray();
            // A batch of rows of one length and a row alone differ in the last bits of the mean (vectorised sums).
            AssertClose(scores, [row.S0, row.S1, row.S2]);
            AssertClose(alone[1].GetTensorDataAsSpan<float>().ToArray(), row.TokenScores);
        }
    }

    [Fact(Timeout = 90_000)]
    public async Task Several_named_inputs_of_different_types_are_fed_from_arrays_of_their_own_types()
    {
        await using var sidecar = await RunningSidecar.StartAsync(Database.ConnectionString);
        var (model, tables) = await ReadyAsync("mixed_inputs.onnx");
        var source = Sql.UniqueName("mixed");
        // pixels as a three-dimensional array, counts as numeric[] (read as double precision[], whole numbers feed int32).
        await Database.DataSource.ExecuteAsync($"""
            CREATE TABLE public.{source} (id int PRIMARY KEY, pixels real[], counts numeric[], flags boolean[], scale double precision[]);
            INSERT INTO public.{source}
            SELECT g, ARRAY(SELECT ARRAY(SELECT ARRAY(SELECT (c * 16 + y * 4 + x + g) / 64.0 FROM generate_series(0, 3) x) FROM generate_series(0, 3) y) FROM generate_series(0, 2) c),
                   ARRAY[g, g + 1, g + 2, g + 3], ARRAY[true, g % 2 = 0, false, true], ARRAY[g / 10.0]
            FROM generate_series(1, 20) g;
            """);
        var name = Sql.UniqueName("mixed_scores");

        await Database.DataSource.ExecuteAsync($"SELECT mad.create_prediction_table('{name}', 'public.{source}', '{{id}}', '{model}')");
        var result = await tables.RefreshAsync(name, cancellationToken: Ct);

        Assert.Equal(0, result.Failed);
        var types = await Database.DataSource.QueryAsync<string>($"SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = 'mad_out.{name}'::regclass AND attnum > 0 ORDER BY attnum");
        Assert.Equal(["integer", "real", "bigint", "bigint", "bigint", "bigint", "double precision[]", "integer", "timestamp with time zone", "text", "text"], types); // ..., error, arm
        var rows = await Database.DataSource.QueryAsync<(int Id, float[] Pixels, double[] Counts, bool[] Flags, double[] Scale, float Score, long K0, long K1, long K2, long K3, double[] Grid, string Dims)>($"""
            SELECT s.id, ARRAY(SELECT unnest(s.pixels)), s.counts::double precision[], s.flags, s.scale,
                   p.score, p.kept_0, p.kept_1, p.kept_2, p.kept_3, ARRAY(SELECT unnest(p.grid)), array_dims(p.grid)
            FROM public.{source} s JOIN mad_out.{name} p USING (id) ORDER BY id
            """);
        using var session = new InferenceSession(Made("mixed_inputs.onnx"));
        Assert.Equal(20, rows.Count);
        foreach (var row in rows)
        {
            using var pixels = OrtValue.CreateTensorValueFromMemory(row.Pixels, [1, 3, 4, 4]);
            using var counts = OrtValue.CreateTensorValueFromMemory(row.Counts.Select(c => (int)c).ToArray(), [1, 4]);
            using var flags = OrtValue.CreateTensorValueFromMemory(row.Flags, [1, 4]);
            using var scale = OrtValue.CreateTensorValueFromMemory(row.Scale, [1, 1]);
            using var alone = session.Run(new RunOptions(), ["pixels", "counts", "flags", "scale"], [pixels, counts, flags, scale], ["score", "kept", "grid"]);
            Assert.Equal(alone[0].GetTensorDataAsSpan<float>()[0], row.Score);
            Assert.Equal(alone[1].GetTensorDataAsSpan<long>().ToArray(), new[] { row.K0, row.K1, row.K2, row.K3 });
            Assert.Equal(alone[2].GetTensorDataAsSpan<double>().ToArray(), row.Grid);
            Assert.Equal("[1:2][1:2]", row.Dims);
        }
    }

    [Fact(Timeout = 90_000)]
    public async Task A_row_whose_array_does_not_fit_gets_its_own_error_and_the_others_are_scored()
    {
        await using var sidecar = await RunningSidecar.StartAsync(Database.ConnectionString);
        var (model, tables) = await ReadyAsync("cnn_uint8.onnx");
        var source = Sql.UniqueName("pixels");
        await Database.DataSource.ExecuteAsync($"""
            CREATE TABLE public.{source} (id bigint PRIMARY KEY, image smallint[]);
            INSERT INTO public.{source} SELECT g, array_fill((g % 200)::smallint, ARRAY[28, 28]) FROM generate_series(1, 10) g;
            UPDATE public.{source} SET image = array_fill(1::smallint, ARRAY[783]) WHERE id = 2;
            UPDATE public.{source} SET image = array_fill(1::smallint, ARRAY[28, 27]) WHERE id = 3;
            UPDATE public.{source} SET image[5][5] = 300 WHERE id = 4;
            UPDATE public.{source} SET image[1][2] = NULL WHERE id = 5;
            UPDATE public.{source} SET image = NULL WHERE id = 6;
            """);
        var name = Sql.UniqueName("checked");
        await Database.DataSource.ExecuteAsync($"SELECT mad.create_prediction_table('{name}', 'public.{source}', '{{id}}', '{model}')");

        var result = await tables.RefreshAsync(name, cancellationToken: Ct);

        Assert.Equal(10, result.Rows);
        Assert.Equal(5, result.Failed);
        var errors = await Database.DataSource.QueryAsync<(long Id, string? Error, float? Logit)>($"SELECT id, error, logits_0 FROM mad_out.{name} ORDER BY id");
        Assert.Equal([
            (1L, (string?)null),
            (2L, "column image: input 'image' takes [1, 28, 28] (784 value(s)) per row; the array has 783 value(s)"),
            (3L, "column image: input 'image' takes [1, 28, 28] (784 value(s)) per row; the array has dimensions [28, 27]"),
            (4L, "column image: element 116: 300 does not fit input 'image' (uint8)"),
            (5L, "column image: the array holds a NULL at element 1, which cannot feed input 'image'"),
            (6L, "column image: null cannot feed input 'image' [1, 28, 28] (784 value(s))"),
        ], errors.Take(6).Select(e => (e.Id, e.Error)));
        Assert.All(errors.Where(e => e.Error is null), e => Assert.NotNull(e.Logit));
        Assert.All(errors.Where(e => e.Error is not null), e => Assert.Null(e.Logit));
    }

    [Fact(Timeout = 60_000)]
    public async Task An_input_of_dynamic_size_mapped_to_scalar_columns_is_refused_naming_it_and_what_feeds_it()
    {
        var (model, _) = await ReadyAsync("token_mean.onnx");
        var source = Sql.UniqueName("flat");
        await Database.DataSource.ExecuteAsync($"CREATE TABLE public.{source} (id bigint PRIMARY KEY, a bigint, b bigint, bad text[])");

        var scalar = await Database.DataSource.FailsAsync($$"""SELECT mad.create_prediction_table('{{Sql.UniqueName("t")}}', 'public.{{source}}', '{id}', '{{model}}', '{"ids": ["a", "b"]}')""");
        var missing = await Database.DataSource.FailsAsync($"SELECT mad.create_prediction_table('{Sql.UniqueName("t")}', 'public.{source}', '{{id}}', '{model}')");

        Assert.Equal(PostgresErrorCodes.InvalidParameterValue, scalar.SqlState);
        Assert.Equal($"Model '{model}' input ids int64[-1,-1] has a dynamic size per row: it is fed from one array column per row (real[], bigint[], ... or bytea), not from 2 column(s).", scalar.MessageText);
        Assert.Contains("\"ids\": \"column\"", scalar.Hint, StringComparison.Ordinal);
        Assert.Contains("not from a column 'ids', which the table does not have as an array", missing.MessageText, StringComparison.Ordinal);
    }

    [Fact(Timeout = 90_000)]
    public async Task Rows_inserted_into_a_watched_table_of_token_arrays_get_predictions_of_their_own_lengths()
    {
        await using var sidecar = await RunningSidecar.StartAsync(Database.ConnectionString);
        var (model, _) = await ReadyAsync("token_mean.onnx");
        var source = Sql.UniqueName("chat");
        await Database.DataSource.ExecuteAsync($"CREATE TABLE public.{source} (id bigint PRIMARY KEY, ids integer[])");
        var name = Sql.UniqueName("chat_scores");
        await Database.DataSource.ExecuteAsync($"SELECT mad.create_prediction_table('{name}', 'public.{source}', '{{id}}', '{model}')");
        await Database.DataSource.ExecuteAsync("SELECT mad.watch(@name)", new { name });

        await Database.DataSource.ExecuteAsync($"INSERT INTO public.{source} VALUES (1, '{{5, 6, 7}}'), (2, '{{8}}'), (3, '{{9, 10, 11, 12, 13, 14}}'), (4, '{{1, NULL}}')");
        await WaitForAsync(Database, $"SELECT count(*) FROM mad_out.{name}", 4);

        var rows = await Database.DataSource.QueryAsync<(long Id, int? Length, string? Error)>($"SELECT id, cardinality(token_scores), error FROM mad_out.{name} ORDER BY id");
        Assert.Equal([(1L, (int?)3, (string?)null), (2L, 1, null), (3L, 6, null)], rows.Take(3));
        Assert.Equal("column ids: the array holds a NULL element, which cannot feed input 'ids'", rows[3].Error);
        using var session = new InferenceSession(Made("token_mean.onnx"));
        using var input = OrtValue.CreateTensorValueFromMemory(new long[] { 9, 10, 11, 12, 13, 14 }, [1, 6]);
        using var alone = session.Run(new RunOptions(), ["ids"], [input], ["token_scores"]);
        AssertClose(alone[0].GetTensorDataAsSpan<float>().ToArray(), await Database.DataSource.ScalarAsync<float[]>($"SELECT token_scores FROM mad_out.{name} WHERE id = 3"));
    }

    [Fact(Timeout = 90_000)]
    public async Task A_row_onnx_runtime_fails_on_gets_its_own_error_at_refresh_and_stream_and_the_other_groups_are_written()
    {
        await using var sidecar = await RunningSidecar.StartAsync(Database.ConnectionString);
        var (model, tables) = await ReadyAsync("token_mean.onnx");
        var source = Sql.UniqueName("texts");
        // token_mean embeds ids 0-99: ids 500 and 150 fail in ONNX Runtime (Gather), as text past a model's positions does.
        await Database.DataSource.ExecuteAsync($"""
            CREATE TABLE public.{source} (id bigint PRIMARY KEY, tokens bigint[]);
            INSERT INTO public.{source} SELECT g, ARRAY(SELECT (g * 7 + t * 3) % 100 FROM generate_series(1, 1 + g % 4) t) FROM generate_series(1, 40) g;
            UPDATE public.{source} SET tokens[2] = 500 WHERE id = 5;
            UPDATE public.{source} SET tokens[1] = 150 WHERE id = 6;
            """);
        var name = Sql.UniqueName("text_scores");
        await Database.DataSource.ExecuteAsync($$"""SELECT mad.create_prediction_table('{{name}}', 'public.{{source}}', '{id}', '{{model}}', '{"ids": "tokens"}')""");

        var result = await tables.RefreshAsync(name, cancellationToken: Ct);

        Assert.Equal((40L, 2L), (result.Rows, result.Failed));
        var rows = await Database.DataSource.QueryAsync<(long Id, long[] Tokens, float? S0, float[]? TokenScores, string? Error)>(
            $"SELECT s.id, s.tokens, p.scores_0, p.token_scores, p.error FROM public.{source} s JOIN mad_out.{name} p USING (id) ORDER BY id");
        Assert.Equal(40, rows.Count);
        Assert.StartsWith("ONNX Runtime could not score this row (input 'ids' [2]): ", rows[4].Error, StringComparison.Ordinal);
        Assert.StartsWith("ONNX Runtime could not score this row (input 'ids' [3]): ", rows[5].Error, StringComparison.Ordinal);
        Assert.All(rows.Where(r => r.Error is not null), r => Assert.Equal((null, null), (r.S0, r.TokenScores)));
        using var session = new InferenceSession(Made("token_mean.onnx"));
        foreach (var row in rows.Where(r => r.Error is null))
        {
            using var input = OrtValue.CreateTensorValueFromMemory(row.Tokens, [1, row.Tokens.Length]);
            using var alone = session.Run(new RunOptions(), ["ids"], [input], ["scores", "token_scores"]);
            AssertClose([alone[0].GetTensorDataAsSpan<float>()[0]], [row.S0!.Value]);
            AssertClose(alone[1].GetTensorDataAsSpan<float>().ToArray(), row.TokenScores!);
        }

        // The stream door: rows inserted into the watched table, one of them past the embedding, in one pass.
        await Database.DataSource.ExecuteAsync("SELECT mad.watch(@name)", new { name });
        await Database.DataSource.ExecuteAsync($"INSERT INTO public.{source} VALUES (41, '{{1, 2}}'), (42, '{{3, 999}}'), (43, '{{4, 5, 6, 7, 8}}'), (44, '{{9, 8}}')");
        await WaitForAsync(Database, $"SELECT count(*) FROM mad_out.{name} WHERE id > 40", 4);
        var streamed = await Database.DataSource.QueryAsync<(long Id, int? Length, string? Error)>($"SELECT id, cardinality(token_scores), error FROM mad_out.{name} WHERE id > 40 ORDER BY id");
        Assert.Equal([(41L, (int?)2, (string?)null), (43L, 5, null), (44L, 2, null)], streamed.Where(r => r.Id != 42));
        Assert.StartsWith("ONNX Runtime could not score this row (input 'ids' [2]): ", streamed[1].Error, StringComparison.Ordinal);
        Assert.Null(streamed[1].Length);
    }

    /// <summary>Within the tolerance ONNX's own backend test runner uses (rtol 1e-3, atol 1e-7).</summary>
    private static void AssertClose(float[] expected, float[] actual)
    {
        Assert.Equal(expected.Length, actual.Length);
        for (var i = 0; i < expected.Length; i++)
        {
            Assert.True(Math.Abs(expected[i] - actual[i]) <= 1e-7 + (1e-3 * Math.Abs(expected[i])), $"element {i}: {actual[i]} is not within tolerance of {expected[i]}");
        }
    }

    private async Task<(string Model, PostgresPredictionTables Tables)> ReadyAsync(string file)
    {
        var registry = new PostgresModelRegistry(Database.DataSource);
        var model = Sql.UniqueName(Path.GetFileNameWithoutExtension(file));
        var pushed = await registry.PushReadyAsync(model, Made(file));
        await registry.WaitForValidationAsync(model, pushed.Version, TimeSpan.FromSeconds(30), Ct);
        return (model, new PostgresPredictionTables(registry, TimeSpan.FromMilliseconds(50)));
    }
}

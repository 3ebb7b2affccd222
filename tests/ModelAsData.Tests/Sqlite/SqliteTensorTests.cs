using System.Text.Json;
using Microsoft.ML.OnnxRuntime;
using ModelAsData.Core;
using ModelAsData.Core.Registry;
using ModelAsData.Sqlite;
using ModelAsData.Tests.Onnx;

namespace ModelAsData.Tests.Sqlite;

/// <summary>
/// Tensors in the embedded store (docs/TENSORS.md): a row's tensor as JSON text or a BLOB, fed to prediction tables
/// and to predict(); tensor outputs as nested JSON; answers compared with ONNX Runtime's own.
/// </summary>
public sealed class SqliteTensorTests
{
    [Fact]
    public async Task Token_ids_as_json_text_of_different_lengths_are_refreshed_into_json_outputs_of_their_lengths()
    {
        await using var db = await TempDatabase.CreateAsync();
        await db.PushAsync("tokens", RowTensorTests.Made("token_mean.onnx"));
        db.Execute("CREATE TABLE sentences (id INTEGER PRIMARY KEY, ids TEXT)");
        db.Execute("INSERT INTO sentences VALUES (1, '[3, 1, 4]'), (2, '[1, 5, 9, 2, 6]'), (3, '[5]'), (4, '[2, 6]'), (5, '[[1, 2]]'), (6, NULL)");
        var tables = new SqlitePredictionTables(db.Registry);

        await tables.CreateAsync(new PredictionTableSpec("sentiment", "sentences", ["id"], "tokens", null));
        var result = await tables.RefreshAsync("sentiment");

        Assert.Equal((6L, 2L), (result.Rows, result.Failed));
        var rows = db.Rows("SELECT id, scores_0, token_scores, error FROM mad_out_sentiment ORDER BY id");
        using var session = new InferenceSession(RowTensorTests.Made("token_mean.onnx"));
        using var ids = OrtValue.CreateTensorValueFromMemory(new long[] { 1, 5, 9, 2, 6 }, [1, 5]);
        using var alone = session.Run(new RunOptions(), ["ids"], [ids], ["scores", "token_scores"]);
        var tokenScores = JsonSerializer.Deserialize<float[]>((string)rows[1]["token_scores"]!)!;
        Assert.Equal(5, tokenScores.Length);
        Assert.All(tokenScores.Zip(alone[1].GetTensorDataAsSpan<float>().ToArray()), p => Assert.Equal(p.Second, p.First, 1e-6f));
        Assert.Equal(alone[0].GetTensorDataAsSpan<float>()[0], (double)rows[1]["scores_0"]!, 1e-6);
        Assert.Equal([3, 5, 1, 2], rows.Take(4).Select(r => JsonSerializer.Deserialize<float[]>((string)r["token_scores"]!)!.Length));
        Assert.Equal("column ids: input 'ids' takes [-1] (-1: any size) per row; the array has dimensions [1, 2]", rows[4]["error"]);
        Assert.Equal("column ids: null cannot feed input 'ids' [-1] (-1: any size)", rows[5]["error"]);
    }

    [Fact]
    public async Task A_row_onnx_runtime_fails_on_gets_its_error_and_the_other_rows_of_every_length_are_written()
    {
        await using var db = await TempDatabase.CreateAsync();
        await db.PushAsync("tokens", RowTensorTests.Made("token_mean.onnx"));
        db.Execute("CREATE TABLE sentences (id INTEGER PRIMARY KEY, ids TEXT)");
        // Ids past the model's embedding of 100 (2 and 5) fail in ONNX Runtime; 2 shares its length with 1 and 3.
        db.Execute("INSERT INTO sentences VALUES (1, '[3, 1, 4]'), (2, '[1, 500, 9]'), (3, '[2, 7, 1]'), (4, '[5]'), (5, '[150, 1, 2, 3, 4]'), (6, '[6, 6]')");
        var tables = new SqlitePredictionTables(db.Registry);
        await tables.CreateAsync(new PredictionTableSpec("sentiment", "sentences", ["id"], "tokens", null));

        var result = await tables.RefreshAsync("sentiment");

        Assert.Equal((6L, 2L), (result.Rows, result.Failed));
        var rows = db.Rows("SELECT id, scores_0, token_scores, error FROM mad_out_sentiment ORDER BY id");
        Assert.Equal([1L, 3, 4, 6], rows.Where(r => r["error"] is null && r["scores_0"] is not null).Select(r => (long)r["id"]!));
        Assert.StartsWith("ONNX Runtime could not score this row (input 'ids' [3]): ", (string)rows[1]["error"]!, StringComparison.Ordinal);
        Assert.StartsWith("ONNX Runtime could not score this row (input 'ids' [5]): ", (string)rows[4]["error"]!, StringComparison.Ordinal);
        Assert.All([rows[1], rows[4]], r => Assert.Equal((null, null), (r["scores_0"], r["token_scores"])));
        using var session = new InferenceSession(RowTensorTests.Made("token_mean.onnx"));
        using var ids = OrtValue.CreateTensorValueFromMemory(new long[] { 2, 7, 1 }, [1, 3]);
        using var alone = session.Run(new RunOptions(), ["ids"], [ids], ["scores"]);
        Assert.Equal(alone[0].GetTensorDataAsSpan<float>()[0], (double)rows[2]["scores_0"]!, 1e-5);
        var connection = await db.OpenConnectionAsync();
        SqlitePredictFunctions.Register(connection);
        var predicted = Assert.ThrowsAny<Exception>(() => TempDatabase.Scalar(connection, "SELECT predict('tokens', '[1, 500]')"));
        Assert.Contains("ONNX Runtime could not score this row (input 'ids' [2]): ", predicted.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_uint8_image_as_a_blob_feeds_predict_and_the_table_and_the_feature_map_comes_back_nested()
    {
        await using var db = await TempDatabase.CreateAsync();
        await db.PushAsync("digits", RowTensorTests.Made("cnn_uint8.onnx"));
        var image = Enumerable.Range(0, 784).Select(p => (byte)(p * 13 % 256)).ToArray();
        db.Execute("CREATE TABLE images (id INTEGER PRIMARY KEY, image BLOB)");
        using (var insert = db.Connection.CreateCommand())
        {
            insert.CommandText = "INSERT INTO images VALUES (1, $image)";
            insert.Parameters.AddWithValue("$image", image);
            insert.ExecuteNonQuery();
        }

        var tables = new SqlitePredictionTables(db.Registry);
        await tables.CreateAsync(new PredictionTableSpec("digit_scores", "images", ["id"], "digits", null));
        await tables.RefreshAsync("digit_scores");
        var connection = await db.OpenConnectionAsync();
        SqlitePredictFunctions.Register(connection);
        var predicted = TempDatabase.Scalar(connection, "SELECT predict('digits', image) FROM images");

        using var session = new InferenceSession(RowTensorTests.Made("cnn_uint8.onnx"));
        using var input = OrtValue.CreateTensorValueFromMemory(image, [1, 1, 28, 28]);
        using var expected = session.Run(new RunOptions(), ["image"], [input], ["logits", "features"]);
        var logits = expected[0].GetTensorDataAsSpan<float>().ToArray();
        var row = db.Rows("SELECT logits_3, features, error FROM mad_out_digit_scores").Single();
        Assert.Null(row["error"]);
        Assert.Equal(logits[3], (double)row["logits_3"]!, 1e-6);
        var features = JsonDocument.Parse((string)row["features"]!).RootElement;
        Assert.Equal((4, 7, 7), (features.GetArrayLength(), features[0].GetArrayLength(), features[0][0].GetArrayLength()));
        Assert.Equal(expected[1].GetTensorDataAsSpan<float>()[8], features[0][1][1].GetSingle(), 1e-6f);
        Assert.Equal((long)Array.IndexOf(logits, logits.Max()), predicted);
        var wrong = Assert.ThrowsAny<Exception>(() => TempDatabase.Scalar(connection, "SELECT predict('digits', x'0102')"));
        Assert.Contains("argument 1: input 'image' takes [1, 28, 28] (784 value(s)) per row; the array has 2 value(s)", wrong.Message, StringComparison.Ordinal);
    }
}

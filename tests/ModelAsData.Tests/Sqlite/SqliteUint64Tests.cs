using System.Globalization;
using ModelAsData.Core;
using ModelAsData.Core.Registry;
using ModelAsData.Sqlite;
using ModelAsData.Tests.Onnx;

namespace ModelAsData.Tests.Sqlite;

/// <summary>
/// uint64 outputs in the embedded store (docs/TENSORS.md): SQLite's INTEGER is signed 64-bit and NUMERIC affinity
/// turns a value past it into a REAL, so a uint64 column is TEXT of its digits and a uint64 tensor JSON text of
/// whole numbers; both exact past 2^63 and 2^53. And the fixed-size batches of gather_ids.onnx / gather_one.onnx,
/// where a row ONNX Runtime fails on gets its own error.
/// </summary>
public sealed class SqliteUint64Tests
{
    [Fact]
    public async Task Uint64_outputs_are_refreshed_into_text_of_their_digits_and_json_and_predict_answers_the_same()
    {
        await using var db = await TempDatabase.CreateAsync();
        await db.PushAsync("u64", RowTensorTests.Made("uint64_columns.onnx"));
        // Row 1 as JSON text of the tensor, row 2 as four TEXT columns of digits, row 3 as INTEGERs (up to 2^63 - 1).
        db.Execute("CREATE TABLE counters (id INTEGER PRIMARY KEY, x TEXT)");
        db.Execute("INSERT INTO counters VALUES (1, '[18446744073709551615, 9223372036854775808, 9007199254740993, 0]'), (2, '[1, 2, 3, 18446744073709551616]')");
        db.Execute("CREATE TABLE parts (id INTEGER PRIMARY KEY, a TEXT, b TEXT, c INTEGER, d INTEGER)");
        db.Execute("INSERT INTO parts VALUES (1, '18446744073709551615', '9223372036854775808', 9007199254740993, 0), (2, '-1', '0', 0, 0)");
        var tables = new SqlitePredictionTables(db.Registry);

        await tables.CreateAsync(new PredictionTableSpec("whole", "counters", ["id"], "u64", null));
        await tables.CreateAsync(new PredictionTableSpec("split", "parts", ["id"], "u64", FeatureMapping.Parse("""{"x": ["a", "b", "c", "d"]}""")));
        var whole = await tables.RefreshAsync("whole");
        var split = await tables.RefreshAsync("split");

        Assert.Equal((2L, 1L), (whole.Rows, whole.Failed));
        Assert.Equal((2L, 1L), (split.Rows, split.Failed));
        var expected = Uint64ColumnTests.Edges.Select(e => e.ToString(CultureInfo.InvariantCulture)).ToArray();
        foreach (var table in new[] { "mad_out_whole", "mad_out_split" })
        {
            var row = db.Rows($"SELECT first, typeof(first) AS kind, echo_0, echo_1, echo_2, echo_3, grid, error FROM {table} WHERE id = 1").Single();
            Assert.Equal(("18446744073709551615", "text", null), (row["first"], row["kind"], row["error"]));
            Assert.Equal(expected, new[] { row["echo_0"], row["echo_1"], row["echo_2"], row["echo_3"] });
            Assert.Equal("[[18446744073709551615,9223372036854775808],[9007199254740993,0]]", row["grid"]);
        }

        Assert.StartsWith("column x: element 3: ", (string)db.Scalar("SELECT error FROM mad_out_whole WHERE id = 2")!, StringComparison.Ordinal); // 2^64 does not fit
        Assert.Equal("column a: text '-1' cannot feed input 'x' (uint64)", db.Scalar("SELECT error FROM mad_out_split WHERE id = 2"));
        Assert.Equal("TEXT", db.Scalar("SELECT type FROM pragma_table_info('mad_out_whole') WHERE name = 'first'"));

        // predict(): the same TEXT; and a prediction table's uint64 column feeds the model again, unchanged.
        var connection = await db.OpenConnectionAsync();
        SqlitePredictFunctions.Register(connection);
        Assert.Equal("18446744073709551615", TempDatabase.Scalar(connection, "SELECT predict('u64', x) FROM counters WHERE id = 1"));
        Assert.Equal("9223372036854775808", TempDatabase.Scalar(connection, "SELECT predict('u64', echo_1, echo_0, echo_2, echo_3) FROM mad_out_whole WHERE id = 1"));
    }

    [Fact]
    public async Task A_row_onnx_runtime_fails_on_in_a_batch_of_fixed_size_rows_gets_its_error_and_the_others_are_written()
    {
        await using var db = await TempDatabase.CreateAsync();
        await db.PushAsync("lookup", RowTensorTests.Made("gather_ids.onnx"));
        await db.PushAsync("lookup_one", RowTensorTests.Made("gather_one.onnx"));
        db.Execute("CREATE TABLE pairs (id INTEGER PRIMARY KEY, ids TEXT)");
        db.Execute("INSERT INTO pairs VALUES (1, '[1, 2]'), (2, '[3, 40]'), (3, '[5, 6]'), (4, '[0, 9]'), (5, '[12, 1]'), (6, '[7, 7]')");
        var tables = new SqlitePredictionTables(db.Registry);
        await tables.CreateAsync(new PredictionTableSpec("batched", "pairs", ["id"], "lookup", null));
        await tables.CreateAsync(new PredictionTableSpec("one_by_one", "pairs", ["id"], "lookup_one", null));

        var batched = await tables.RefreshAsync("batched");
        var oneByOne = await tables.RefreshAsync("one_by_one");

        Assert.Equal((6L, 2L), (batched.Rows, batched.Failed));
        Assert.Equal((6L, 2L), (oneByOne.Rows, oneByOne.Failed));
        var rows = db.Rows("SELECT b.id, b.score, b.error, o.score AS one_score, o.error AS one_error FROM mad_out_batched b JOIN mad_out_one_by_one o USING (id) ORDER BY id");
        Assert.Equal([2L, 5L], rows.Where(r => r["error"] is not null).Select(r => (long)r["id"]!));
        Assert.All(rows.Where(r => r["error"] is not null), r => Assert.StartsWith("ONNX Runtime could not score this row: ", (string)r["error"]!, StringComparison.Ordinal));
        // A batch and a row alone may differ in the last bit of a float sum.
        Assert.All(rows, r => Assert.Equal(r["error"] is null, r["one_error"] is null));
        Assert.All(rows.Where(r => r["error"] is null), r => Assert.Equal((double)r["score"]!, (double)r["one_score"]!, 1e-6));
        Assert.Equal(0.3 + 0.4 + 0.5 + 0.6 + 0.7 + 0.8, (double)rows[0]["score"]!, 5); // table rows 1 and 2
    }
}

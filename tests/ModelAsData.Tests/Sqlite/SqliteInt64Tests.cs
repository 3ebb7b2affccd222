using ModelAsData.Core;
using ModelAsData.Core.Registry;
using ModelAsData.Sqlite;
using ModelAsData.Tests.Onnx;

namespace ModelAsData.Tests.Sqlite;

/// <summary>
/// int64 outputs keep every bit (docs/TENSORS.md): int64_columns.onnx (tests/models/make_onnx_graphs.py) passes an
/// int64 [N, 2] input through Slice and Identity, so the INTEGER columns must hold what went in, past 2^53 (where a
/// double steps by 2) and at both extremes of a signed 64-bit integer.
/// </summary>
public sealed class SqliteInt64Tests
{
    public static readonly long[] Edges = [9007199254740993, long.MaxValue, long.MinValue, -9007199254740993];

    [Fact]
    public async Task Int64_outputs_past_two_to_the_53_are_refreshed_and_predicted_exactly()
    {
        await using var db = await TempDatabase.CreateAsync();
        await db.PushAsync("i64", RowTensorTests.Made("int64_columns.onnx"));
        db.Execute("CREATE TABLE pairs (id INTEGER PRIMARY KEY, a INTEGER, b INTEGER)");
        db.Execute($"INSERT INTO pairs VALUES (1, {Edges[0]}, {Edges[1]}), (2, {Edges[2]}, {Edges[3]})");
        var tables = new SqlitePredictionTables(db.Registry);
        await tables.CreateAsync(new PredictionTableSpec("pair_scores", "pairs", ["id"], "i64", FeatureMapping.Parse("""{"x": ["a", "b"]}""")));

        var result = await tables.RefreshAsync("pair_scores");

        Assert.Equal((2L, 0L), (result.Rows, result.Failed));
        var rows = db.Rows("SELECT first, echo_0, echo_1, typeof(first) AS kind FROM mad_out_pair_scores ORDER BY id");
        Assert.Equal([Edges[0], Edges[0], Edges[1], Edges[2], Edges[2], Edges[3]],
            rows.SelectMany(r => new[] { (long)r["first"]!, (long)r["echo_0"]!, (long)r["echo_1"]! }));
        Assert.All(rows, r => Assert.Equal("integer", r["kind"]));

        var connection = await db.OpenConnectionAsync();
        SqlitePredictFunctions.Register(connection);
        Assert.Equal(long.MinValue, TempDatabase.Scalar(connection, "SELECT predict('i64', a, b) FROM pairs WHERE id = 2"));
    }
}

using System.Text.Json.Nodes;
using Microsoft.ML.OnnxRuntime;
using ModelAsData.IntegrationTests.Postgres;
using static ModelAsData.IntegrationTests.Requests.RequestSupport;

namespace ModelAsData.IntegrationTests.Requests;

/// <summary>CALL mad.predict with one row's tensors as nested JSON, answered with tensor outputs as nested JSON (docs/TENSORS.md).</summary>
public sealed class TensorCallTests(PostgresDatabase database) : OnlineRequestTests(database)
{
    private static string Made(string file) => Path.Combine(AppContext.BaseDirectory, "TestData", file);

    [Fact(Timeout = 60_000)]
    public async Task Call_takes_nested_json_tensors_and_answers_tensor_outputs_nested_as_onnx_runtime_computes_them()
    {
        var registry = new PostgresModelRegistry(Database.DataSource);
        var tokens = Sql.UniqueName("tokens");
        var mixed = Sql.UniqueName("mixed");
        await registry.PushReadyAsync(tokens, Made("token_mean.onnx"));
        await registry.PushReadyAsync(mixed, Made("mixed_inputs.onnx"));
        await using var sidecar = await StartSidecarAsync();

        var short_ = JsonNode.Parse(await CallAsync(Database.DataSource, tokens, """{"ids": [3, 1, 4]}"""))!;
        var long_ = JsonNode.Parse(await CallAsync(Database.DataSource, tokens, """{"ids": [1, 5, 9, 2, 6, 5]}"""))!;
        var grid = JsonNode.Parse(await CallAsync(Database.DataSource, mixed, """
            {"pixels": [[[1,1,1,1],[1,1,1,1],[1,1,1,1],[1,1,1,1]],[[2,2,2,2],[2,2,2,2],[2,2,2,2],[2,2,2,2]],[[3,3,3,3],[3,3,3,3],[3,3,3,3],[3,3,3,3]]],
             "counts": [1, 2, 3, 4], "flags": [false, true, true, false], "scale": [1.5]}
            """))!;
        var wrong = await Database.DataSource.FailsAsync("CALL mad.predict(@model, @features::jsonb, NULL)", new { model = mixed, features = """{"pixels": [[1, 2]], "counts": [1, 2, 3, 4], "flags": [true, true, true, true], "scale": [1]}""" });

        using var session = new InferenceSession(Made("token_mean.onnx"));
        using var ids = OrtValue.CreateTensorValueFromMemory(new long[] { 1, 5, 9, 2, 6, 5 }, [1, 6]);
        using var alone = session.Run(new RunOptions(), ["ids"], [ids], ["token_scores"]);
        Assert.Equal(3, short_["token_scores"]!.AsArray().Count);
        Assert.Equal(alone[0].GetTensorDataAsSpan<float>().ToArray(), long_["token_scores"]!.AsArray().Select(v => v!.GetValue<float>()).ToArray());
        Assert.Equal("[[3,3],[3,3]]", grid["grid"]!.ToJsonString());
        Assert.Equal(2L, grid["kept_1"]!.GetValue<long>());
        Assert.Contains("input 'pixels' takes [3, 4, 4] (48 value(s)) per row; the array has dimensions [1, 2]", wrong.MessageText, StringComparison.Ordinal);
    }
}

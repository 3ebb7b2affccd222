using System.Net;
using System.Net.Http.Json;
using System.Text.Json.Nodes;
using Microsoft.Extensions.DependencyInjection;
using ModelAsData.IntegrationTests.Hostile;
using ModelAsData.Sidecar.Requests;
using static ModelAsData.IntegrationTests.Requests.RequestSupport;

namespace ModelAsData.IntegrationTests.Requests;

/// <summary>The Open Inference Protocol v2 endpoint and /metrics of a sidecar started in-process on a free loopback port.</summary>
public sealed class HttpInferenceTests(PostgresDatabase database) : OnlineRequestTests(database)
{
    [Fact(Timeout = 60_000)]
    public async Task Health_metadata_infer_and_metrics_answer_over_http()
    {
        var model = await PushIrisAsync();
        await using var roles = new HostileRoles(Database);
        var token = await HttpDoorSupport.TokenAsync(Database, await roles.GroupAsync("scorer", "IN ROLE mad_user"));
        await using var sidecar = await StartSidecarAsync($"127.0.0.1:{FreePort()}");
        var address = sidecar.Services.GetRequiredService<HttpInferenceService>().Address!;
        Assert.Equal("127.0.0.1", address.Host);
        using var http = HttpDoorSupport.Client(sidecar, token);

        Assert.True((await http.GetFromJsonAsync<JsonObject>("/v2/health/live", Ct))!["live"]!.GetValue<bool>());
        Assert.True((await http.GetFromJsonAsync<JsonObject>("/v2/health/ready", Ct))!["ready"]!.GetValue<bool>());
        var metadata = (await http.GetFromJsonAsync<JsonObject>($"/v2/models/{model}", Ct))!;
        Assert.Equal("float_input", metadata["inputs"]![0]!["name"]!.GetValue<string>());
        Assert.Equal("FP32", metadata["inputs"]![0]!["datatype"]!.GetValue<string>());
        // The model's own outputs (its ZipMap removed at load), not the decoded columns of prediction tables.
        Assert.Equal("output_label", metadata["outputs"]![0]!["name"]!.GetValue<string>());
        Assert.Equal("INT64", metadata["outputs"]![0]!["datatype"]!.GetValue<string>());
        Assert.Equal("output_probability", metadata["outputs"]![1]!["name"]!.GetValue<string>());
        Assert.Equal("[-1,3]", metadata["outputs"]![1]!["shape"]!.ToJsonString());

        var request = new JsonObject
        {
            ["id"] = "r1",
            ["inputs"] = new JsonArray(new JsonObject
            {
                ["name"] = "float_input", ["shape"] = new JsonArray(3, 4), ["datatype"] = "FP32",
                ["data"] = new JsonArray(5.1, 3.5, 1.4, 0.2, 7.0, 3.2, 4.7, 1.4, 6.3, 3.3, 6.0, 2.5),
            }),
        };
        using var infer = await http.PostAsJsonAsync($"/v2/models/{model}/versions/1/infer", request, Ct);
        Assert.Equal(HttpStatusCode.OK, infer.StatusCode);
        var answer = (await infer.Content.ReadFromJsonAsync<JsonObject>(Ct))!;
        Assert.Equal("1", answer["model_version"]!.GetValue<string>());
        Assert.Equal("r1", answer["id"]!.GetValue<string>());
        var label = answer["outputs"]!.AsArray().Single(o => o!["name"]!.GetValue<string>() == "output_label")!;
        Assert.Equal([0L, 1L, 2L], label["data"]!.AsArray().Select(v => v!.GetValue<long>()));
        Assert.Equal("INT64", label["datatype"]!.GetValue<string>());
        Assert.Equal("[3]", label["shape"]!.ToJsonString());
        var probability = answer["outputs"]!.AsArray().Single(o => o!["name"]!.GetValue<string>() == "output_probability")!;
        Assert.Equal("FP32", probability["datatype"]!.GetValue<string>());
        Assert.Equal("[3,3]", probability["shape"]!.ToJsonString());
        Assert.Equal(0.98999935, probability["data"]![(1 * 3) + 1]!.GetValue<double>(), 6);

        // Logged like the SQL doors: the same features hash the same.
        await Eventually.WaitForAsync(
            () => Database.DataSource.ScalarAsync<long>("SELECT count(*) FROM mad.prediction_log WHERE door = 'http' AND model = @model AND inputs_sha256 = mad.inputs_hash(@features::jsonb)", new { model, features = Setosa }),
            n => n == 1, "the http prediction in the log");

        var metrics = await http.GetStringAsync("/metrics", Ct);
        Assert.Contains("mad_online_requests_total{door=\"http\",outcome=\"ok\"} 1", metrics, StringComparison.Ordinal);
        Assert.Contains("mad_online_request_duration_seconds_bucket{door=\"http\"", metrics, StringComparison.Ordinal);
        Assert.Contains($"mad_rows_scored_total{{model=\"{model}\"}} 3", metrics, StringComparison.Ordinal);
        Assert.Contains($"mad_model_loads_total{{model=\"{model}\"}} 1", metrics, StringComparison.Ordinal);
    }

    [Fact(Timeout = 60_000)]
    public async Task A_missing_model_or_bad_input_gets_an_oip_error()
    {
        var model = await PushIrisAsync();
        await using var roles = new HostileRoles(Database);
        var token = await HttpDoorSupport.TokenAsync(Database, await roles.GroupAsync("scorer", "IN ROLE mad_user"));
        await using var sidecar = await StartSidecarAsync($"127.0.0.1:{FreePort()}");
        using var http = HttpDoorSupport.Client(sidecar, token);

        using var missing = await http.PostAsJsonAsync("/v2/models/no_such_model/infer", new JsonObject(), Ct);
        using var shape = await http.PostAsJsonAsync($"/v2/models/{model}/infer", JsonNode.Parse("""{"inputs": [{"name": "float_input", "shape": [1, 3], "datatype": "FP32", "data": [1, 2, 3]}]}"""), Ct);
        using var name = await http.PostAsJsonAsync($"/v2/models/{model}/infer", JsonNode.Parse("""{"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4]}]}"""), Ct);
        using var text = await http.PostAsync($"/v2/models/{model}/infer", new StringContent("not json"), Ct);

        Assert.Equal(HttpStatusCode.NotFound, missing.StatusCode);
        Assert.Contains("does not exist", (await missing.Content.ReadFromJsonAsync<JsonObject>(Ct))!["error"]!.GetValue<string>(), StringComparison.Ordinal);
        Assert.Equal(HttpStatusCode.BadRequest, shape.StatusCode);
        Assert.Contains("takes [-1, 4]", (await shape.Content.ReadFromJsonAsync<JsonObject>(Ct))!["error"]!.GetValue<string>(), StringComparison.Ordinal);
        Assert.Equal(HttpStatusCode.BadRequest, name.StatusCode);
        Assert.Contains("no input 'x'", (await name.Content.ReadFromJsonAsync<JsonObject>(Ct))!["error"]!.GetValue<string>(), StringComparison.Ordinal);
        Assert.Equal(HttpStatusCode.BadRequest, text.StatusCode);
    }
}

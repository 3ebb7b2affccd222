using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json.Nodes;
using Microsoft.Extensions.DependencyInjection;
using ModelAsData.IntegrationTests.Requests;
using ModelAsData.Sidecar;
using ModelAsData.Sidecar.Requests;
using ModelAsData.Sidecar.Validation;

namespace ModelAsData.IntegrationTests.Conformance;

/// <summary>
/// A model with several named inputs of types rows of a table cannot carry (uint64, float16, bfloat16, uint8 images,
/// strings of a dynamic length), pushed, validated and scored over the Open Inference Protocol as a client sends it.
/// </summary>
public sealed class TensorInferenceTests(PostgresDatabase database) : DatabaseTests(database)
{
    private const string Request = """
        {"id": "t1", "inputs": [
          {"name": "ids", "shape": [2], "datatype": "UINT64", "data": [18446744073709551615, 9007199254740993]},
          {"name": "half", "shape": [2, 2], "datatype": "FP16", "data": [[0.1, 65504], [6e-8, -2]]},
          {"name": "brain", "shape": [2], "datatype": "BF16", "data": [1.5, "NaN"]},
          {"name": "pixels", "shape": [2, 1, 2, 2], "datatype": "UINT8", "data": [0, 255, 7, 8, 9, 10, 11, 12]},
          {"name": "tokens", "shape": [2, 3], "datatype": "BYTES", "data": ["a", "b", "c", "ü", "", "✓"]}
        ]}
        """;

    [Fact(Timeout = 60_000)]
    public async Task Tensors_of_any_type_and_shape_are_answered_by_their_own_names_shapes_and_datatypes()
    {
        var model = await PushAsync();

        await using var sidecar = await RequestSupport.StartSidecarAsync(Database, $"127.0.0.1:{RequestSupport.FreePort()}");
        using var http = HttpDoorSupport.Client(sidecar, await HttpDoorSupport.TokenAsync(Database, "mad_user")); // the HTTP door wants a token

        var metadata = (await http.GetFromJsonAsync<JsonObject>($"/v2/models/{model}", Ct))!;
        Assert.Equal("""[{"name":"ids","datatype":"UINT64","shape":[-1]},{"name":"half","datatype":"FP16","shape":[-1,2]},{"name":"brain","datatype":"BF16","shape":[-1]},{"name":"pixels","datatype":"UINT8","shape":[-1,1,2,2]},{"name":"tokens","datatype":"BYTES","shape":[-1,-1]}]""",
            metadata["inputs"]!.ToJsonString());
        Assert.Equal(["ids_out", "half_out", "brain_out", "pixels_out", "tokens_out"], metadata["outputs"]!.AsArray().Select(o => o!["name"]!.GetValue<string>()));

        using var infer = await http.PostAsync($"/v2/models/{model}/infer", new StringContent(Request, Encoding.UTF8, "application/json"), Ct);
        var text = await infer.Content.ReadAsStringAsync(Ct);
        Assert.Equal(HttpStatusCode.OK, infer.StatusCode);
        var answer = JsonNode.Parse(text)!;
        Assert.Equal("t1", answer["id"]!.GetValue<string>());
        // Exact: uint64 above 2^53, float16 bits (0.1 is 0x2E66 and prints back as 0.1), NaN, UTF-8 strings.
        Assert.Contains("""{"name":"ids_out","datatype":"UINT64","shape":[2],"data":[18446744073709551615,9007199254740993]}""", text, StringComparison.Ordinal);
        Assert.Contains("""{"name":"half_out","datatype":"FP16","shape":[2,2],"data":[0.1,65500,6E-08,-2]}""", text, StringComparison.Ordinal);
        Assert.Contains("""{"name":"brain_out","datatype":"BF16","shape":[2],"data":[1.5,"NaN"]}""", text, StringComparison.Ordinal);
        Assert.Contains("""{"name":"pixels_out","datatype":"UINT8","shape":[2,1,2,2],"data":[0,255,7,8,9,10,11,12]}""", text, StringComparison.Ordinal);
        Assert.Contains("""{"name":"tokens_out","datatype":"BYTES","shape":[2,3],"data":["a","b","c","ü","","✓"]}""", text, StringComparison.Ordinal);

        // Requested outputs only, in the order asked.
        var some = JsonNode.Parse(Request)!.AsObject();
        some["outputs"] = new JsonArray(new JsonObject { ["name"] = "tokens_out" }, new JsonObject { ["name"] = "ids_out" });
        using var requested = await http.PostAsJsonAsync($"/v2/models/{model}/infer", some, Ct);
        var outputs = (await requested.Content.ReadFromJsonAsync<JsonObject>(Ct))!["outputs"]!.AsArray();
        Assert.Equal(["tokens_out", "ids_out"], outputs.Select(o => o!["name"]!.GetValue<string>()));

        // Errors in the protocol's form, naming what is wrong and what the model takes.
        var wrongType = JsonNode.Parse(Request.Replace("\"UINT64\"", "\"INT64\"", StringComparison.Ordinal))!;
        var outOfRange = JsonNode.Parse(Request.Replace("[0, 255, 7", "[0, 256, 7", StringComparison.Ordinal))!;
        var noOutput = JsonNode.Parse(Request)!.AsObject();
        noOutput["outputs"] = new JsonArray(new JsonObject { ["name"] = "nope" });
        foreach (var (body, expected) in new[] { (wrongType, "model '" + model + "' takes UINT64"), (outOfRange, "Input 'pixels' element 1 is 256"), ((JsonNode)noOutput, "no output 'nope'") })
        {
            using var refused = await http.PostAsJsonAsync($"/v2/models/{model}/infer", body, Ct);
            Assert.Equal(HttpStatusCode.BadRequest, refused.StatusCode);
            var error = (await refused.Content.ReadFromJsonAsync<JsonObject>(Ct))!;
            Assert.Equal(["error"], error.Select(p => p.Key));
            Assert.Contains(expected, error["error"]!.GetValue<string>(), StringComparison.Ordinal);
        }
    }

    [Fact(Timeout = 60_000)]
    public async Task Binary_tensor_data_goes_in_and_out_after_the_json()
    {
        var model = await PushAsync();
        await using var sidecar = await RequestSupport.StartSidecarAsync(Database, $"127.0.0.1:{RequestSupport.FreePort()}");
        using var http = HttpDoorSupport.Client(sidecar, await HttpDoorSupport.TokenAsync(Database, "mad_user")); // the HTTP door wants a token
        Assert.Contains("binary_tensor_data", await http.GetStringAsync("/v2", Ct), StringComparison.Ordinal);

        // As tritonclient sends it: pixels and tokens as binary after the JSON, every output asked for as binary but one.
        var request = JsonNode.Parse(Request)!.AsObject();
        var inputs = request["inputs"]!.AsArray();
        byte[] pixels = [0, 255, 7, 8, 9, 10, 11, 12];
        byte[] tokens = [.. Element("a"), .. Element("b"), .. Element("c"), .. Element("ü"), .. Element(""), .. Element("✓")];
        foreach (var (name, bytes) in new[] { ("pixels", pixels), ("tokens", tokens) })
        {
            var input = inputs.Single(i => i!["name"]!.GetValue<string>() == name)!.AsObject();
            input.Remove("data");
            input["parameters"] = new JsonObject { ["binary_data_size"] = bytes.Length };
        }

        request["parameters"] = new JsonObject { ["binary_data_output"] = true };
        request["outputs"] = new JsonArray(
            new JsonObject { ["name"] = "tokens_out" },
            new JsonObject { ["name"] = "ids_out", ["parameters"] = new JsonObject { ["binary_data"] = false } },
            new JsonObject { ["name"] = "half_out" });
        var json = Encoding.UTF8.GetBytes(request.ToJsonString());
        using var content = new ByteArrayContent([.. json, .. pixels, .. tokens]);
        content.Headers.Add("Inference-Header-Content-Length", json.Length.ToString(System.Globalization.CultureInfo.InvariantCulture));
        using var response = await http.PostAsync($"/v2/models/{model}/infer", content, Ct);
        var body = await response.Content.ReadAsByteArrayAsync(Ct);
        Assert.True(response.IsSuccessStatusCode, Encoding.UTF8.GetString(body));

        var jsonLength = int.Parse(response.Headers.GetValues("Inference-Header-Content-Length").Single(), System.Globalization.CultureInfo.InvariantCulture);
        var answer = JsonNode.Parse(body.AsSpan(0, jsonLength))!;
        var outputs = answer["outputs"]!.AsArray();
        Assert.Equal(["tokens_out", "ids_out", "half_out"], outputs.Select(o => o!["name"]!.GetValue<string>()));
        Assert.Equal(tokens.Length, outputs[0]!["parameters"]!["binary_data_size"]!.GetValue<int>());
        Assert.Null(outputs[0]!["data"]);
        Assert.Equal("[18446744073709551615,9007199254740993]", outputs[1]!["data"]!.ToJsonString());
        Assert.Equal(8, outputs[2]!["parameters"]!["binary_data_size"]!.GetValue<int>());
        // 0.1, 65504, 6e-8, -2 as float16 bits, little-endian.
        Assert.Equal([.. tokens, 0x66, 0x2E, 0xFF, 0x7B, 0x01, 0x00, 0x00, 0xC0], body[jsonLength..]);

        // Sizes that do not add up are refused.
        using var short_ = new ByteArrayContent([.. json, .. pixels]);
        short_.Headers.Add("Inference-Header-Content-Length", json.Length.ToString(System.Globalization.CultureInfo.InvariantCulture));
        using var refused = await http.PostAsync($"/v2/models/{model}/infer", short_, Ct);
        Assert.Equal(HttpStatusCode.BadRequest, refused.StatusCode);
        Assert.Contains("binary_data_size", (await refused.Content.ReadFromJsonAsync<JsonObject>(Ct))!["error"]!.GetValue<string>(), StringComparison.Ordinal);
    }

    private async Task<string> PushAsync()
    {
        var model = Sql.UniqueName("tensors");
        var registry = new PostgresModelRegistry(Database.DataSource);
        await registry.PushAsync(model, IdentityModels.Build(("ids", 13, [null]), ("half", 10, [null, 2]), ("brain", 16, [null]),
            ("pixels", 2, [null, 1, 2, 2]), ("tokens", 8, [null, null])), [], Ct);
        await new PendingVersionValidator(Database.DataSource, new SidecarOptions { SidecarId = "tests" }).ValidatePendingAsync(Ct);
        Assert.Equal("ready", await Database.DataSource.ScalarAsync<string>("SELECT status FROM mad.model_versions WHERE model = @model", new { model }));
        return model;
    }

    private static byte[] Element(string text)
    {
        var bytes = Encoding.UTF8.GetBytes(text);
        return [.. BitConverter.GetBytes((uint)bytes.Length), .. bytes];
    }
}

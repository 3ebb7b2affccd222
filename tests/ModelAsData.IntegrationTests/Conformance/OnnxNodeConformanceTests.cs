using System.Buffers;
using System.Collections.Concurrent;
using System.Globalization;
using System.Net.Http.Headers;
using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;
using ModelAsData.IntegrationTests.Requests;
using ModelAsData.Sidecar.Requests;

namespace ModelAsData.IntegrationTests.Conformance;

/// <summary>
/// ONNX's own backend node tests through the whole product: every model is pushed to PostgreSQL, validated by a real
/// sidecar, and scored through its Open Inference Protocol endpoint over HTTP; each answer must carry the model's own
/// output names, datatypes and shapes, and the expected values within ONNX's tolerance. The bar is what ONNX Runtime
/// itself loads and runs (checked in the same run through its own API); the rest are listed with the reason.
/// </summary>
public sealed class OnnxNodeConformanceTests(PostgresDatabase database) : DatabaseTests(database)
{
    [Fact(Timeout = 300_000)]
    public async Task Every_node_test_onnx_runtime_runs_passes_through_the_oip_endpoint()
    {
        // ONNX Runtime warns about every old opset it loads (hundreds of lines): errors only.
        Microsoft.ML.OnnxRuntime.OrtEnv.Instance().EnvLogLevel = Microsoft.ML.OnnxRuntime.OrtLoggingLevel.ORT_LOGGING_LEVEL_ERROR;
        var clock = System.Diagnostics.Stopwatch.StartNew();
        var phases = new List<string>();
        var tests = NodeTest.LoadAll();
        var cannot = new ConcurrentDictionary<string, string>();
        var reference = Task.Run(() => Parallel.ForEach(tests, new ParallelOptions { MaxDegreeOfParallelism = 2 }, test =>
        {
            if (test.RunInOnnxRuntime() is { } reason)
            {
                cannot[test.Name] = reason;
            }
        }), Ct);

        // One model per test, pushed in one transaction; the sidecar validates them all on start.
        var names = tests.Select((t, i) => (Test: t, Model: $"node_{i.ToString("D4", CultureInfo.InvariantCulture)}")).ToList();
        await using (var connection = await Database.DataSource.OpenConnectionAsync(Ct))
        await using (var transaction = await connection.BeginTransactionAsync(Ct))
        {
            foreach (var (test, model) in names)
            {
                await using var push = new NpgsqlCommand("SELECT mad.push_model($1, $2, '{}')", connection, transaction)
                {
                    Parameters = { new() { Value = model }, new() { Value = test.Model } },
                };
                await push.ExecuteNonQueryAsync(Ct);
            }

            await transaction.CommitAsync(Ct);
        }

        phases.Add($"pushed {clock.Elapsed.TotalSeconds:F1} s");
        await using var sidecar = await RequestSupport.StartSidecarAsync(Database, $"127.0.0.1:{RequestSupport.FreePort()}");
        await Eventually.WaitForAsync(
            () => Database.DataSource.ScalarAsync<long>("SELECT count(*) FROM mad.model_versions WHERE status = 'pending'"),
            n => n == 0, "every node test model validated", TimeSpan.FromSeconds(120));
        phases.Add($"validated {clock.Elapsed.TotalSeconds:F1} s");
        var rejected = (await Database.DataSource.QueryAsync<(string Model, string Reason)>(
            "SELECT model, reason FROM mad.model_versions WHERE status = 'rejected'")).ToDictionary(r => r.Model, r => r.Reason);

        using var http = HttpDoorSupport.Client(sidecar, await HttpDoorSupport.TokenAsync(Database, "mad_user")); // the HTTP door wants a token
        var outcomes = new ConcurrentDictionary<string, string?>();
        await Parallel.ForEachAsync(names, new ParallelOptions { MaxDegreeOfParallelism = 4, CancellationToken = Ct }, async (entry, ct) =>
        {
            var (test, model) = entry;
            outcomes[test.Name] = rejected.TryGetValue(model, out var reason)
                ? $"rejected at validation: {reason}"
                : await InferAsync(http, model, test, ct);
        });

        phases.Add($"scored over HTTP {clock.Elapsed.TotalSeconds:F1} s");
        await reference;
        phases.Add($"ONNX Runtime's own runs done {clock.Elapsed.TotalSeconds:F1} s");
        var passed = outcomes.Where(o => o.Value is null).Select(o => o.Key).ToHashSet();
        var runnable = tests.Where(t => !cannot.ContainsKey(t.Name)).ToList();
        var failing = runnable.Where(t => !passed.Contains(t.Name)).Select(t => $"{t.Name}: {outcomes[t.Name]}").ToList();
        var report = $"{passed.Count} of {tests.Count} node tests (and MNIST-8's data sets) pass through POST /v2/models/{{name}}/infer; ONNX Runtime itself runs {runnable.Count}. " +
            $"Failing of those: {failing.Count}. ({string.Join(", ", phases)})\n" + string.Join("\n", failing) +
            "\nNot run by ONNX Runtime itself (and what the endpoint said):\n" +
            string.Join("\n", cannot.OrderBy(c => c.Key, StringComparer.Ordinal).Select(c => $"{c.Key}: {c.Value} | endpoint: {outcomes[c.Key] ?? "passes"}"));
        TestContext.Current.SendDiagnosticMessage(report);
        File.WriteAllText(Path.Combine(Path.GetTempPath(), "mad-node-conformance.txt"), report);
        Assert.True(failing.Count == 0, report);
        Assert.True(runnable.Count > tests.Count / 2, report);
    }

    /// <summary>Null when the endpoint's answer matches the expected outputs, else what differs.</summary>
    private static async Task<string?> InferAsync(HttpClient http, string model, NodeTest test, CancellationToken cancellationToken)
    {
        var buffer = new ArrayBufferWriter<byte>();
        using (var writer = new Utf8JsonWriter(buffer))
        {
            writer.WriteStartObject();
            writer.WriteStartArray("inputs");
            for (var k = 0; k < test.InputNames.Count; k++)
            {
                NodeTensor.Read(test.InputFiles[k]).WriteInput(writer, test.InputNames[k]);
            }

            writer.WriteEndArray();
            writer.WriteEndObject();
        }

        using var content = new ByteArrayContent(buffer.WrittenSpan.ToArray());
        content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
        using var response = await http.PostAsync($"/v2/models/{model}/infer", content, cancellationToken);
        using var answer = JsonDocument.Parse(await response.Content.ReadAsStringAsync(cancellationToken));
        if (!response.IsSuccessStatusCode)
        {
            return $"HTTP {(int)response.StatusCode}: {(answer.RootElement.TryGetProperty("error", out var error) ? error.GetString() : answer.RootElement.GetRawText())}";
        }

        var outputs = answer.RootElement.GetProperty("outputs").EnumerateArray().ToList();
        if (!outputs.Select(o => o.GetProperty("name").GetString()).SequenceEqual(test.OutputNames))
        {
            return $"outputs are {string.Join(", ", outputs.Select(o => o.GetProperty("name").GetString()))}, expected {string.Join(", ", test.OutputNames)}";
        }

        for (var o = 0; o < outputs.Count; o++)
        {
            var shape = outputs[o].GetProperty("shape").EnumerateArray().Select(d => d.GetInt64()).ToArray();
            var data = outputs[o].GetProperty("data").EnumerateArray().ToList();
            var type = $"{outputs[o].GetProperty("datatype").GetString()}[{string.Join(", ", shape)}]";
            if (NodeTest.Compare(NodeTensor.Read(test.OutputFiles[o]), test.OutputNames[o], type, shape, data.Count, i => NodeTensor.Text(data[(int)i])) is { } difference)
            {
                return difference;
            }
        }

        return null;
    }
}

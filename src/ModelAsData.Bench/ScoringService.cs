using System.Net;
using System.Net.Http.Json;
using System.Net.Sockets;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;
using ModelAsData.Core.Onnx;

namespace ModelAsData.Bench;

/// <summary>
/// A minimal model-as-a-service endpoint for the benchmark: ASP.NET Core on 127.0.0.1, <c>POST /score</c> with
/// <c>{"rows": [[f1, f2, f3, f4], ...]}</c>, answering labels and class probabilities scored with ONNX Runtime.
/// Owns the web host and its client; does not own the model.
/// </summary>
internal sealed class ScoringService : IAsyncDisposable
{
    private readonly WebApplication _app;
    private readonly HttpClient _client;

    private ScoringService(WebApplication app, HttpClient client)
    {
        _app = app;
        _client = client;
    }

    public static async Task<ScoringService> StartAsync(OnnxModel model, CancellationToken cancellationToken)
    {
        var port = FreePort();
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.UseKestrel(options => options.Listen(IPAddress.Loopback, port));
        var app = builder.Build();
        var scorer = model.CreateScorer(1024);
        var gate = new Lock();
        app.MapPost("/score", (ScoreRequest request) =>
        {
            lock (gate)
            {
                return Score(scorer, request);
            }
        });
        await app.StartAsync(cancellationToken);
        return new ScoringService(app, new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{port}/") });
    }

    public async Task<ScoreResponse> ScoreAsync(IReadOnlyList<float[]> rows, CancellationToken cancellationToken)
    {
        using var response = await _client.PostAsJsonAsync("score", new ScoreRequest(rows), cancellationToken);
        response.EnsureSuccessStatusCode();
        return await response.Content.ReadFromJsonAsync<ScoreResponse>(cancellationToken) ?? throw new InvalidDataException("The service answered nothing.");
    }

    public async ValueTask DisposeAsync()
    {
        _client.Dispose();
        await _app.StopAsync();
        await _app.DisposeAsync();
    }

    private static ScoreResponse Score(ModelScorer scorer, ScoreRequest request)
    {
        var labels = new long[request.Rows.Count];
        var probabilities = new float[request.Rows.Count][];
        for (var start = 0; start < request.Rows.Count; start += scorer.Capacity)
        {
            scorer.Clear();
            var n = Math.Min(scorer.Capacity, request.Rows.Count - start);
            for (var r = 0; r < n; r++)
            {
                scorer.BeginRow();
                var row = request.Rows[start + r];
                for (var f = 0; f < row.Length; f++)
                {
                    scorer.SetFloat(f, row[f]);
                }

                scorer.EndRow();
            }

            var scored = scorer.Score();
            for (var r = 0; r < n; r++)
            {
                labels[start + r] = scored.GetLong(r, 0);
                probabilities[start + r] = [(float)scored.GetDouble(r, 1), (float)scored.GetDouble(r, 2), (float)scored.GetDouble(r, 3)];
            }
        }

        return new ScoreResponse(labels, probabilities);
    }

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    public sealed record ScoreRequest(IReadOnlyList<float[]> Rows);

    public sealed record ScoreResponse(long[] Labels, float[][] Probabilities);
}

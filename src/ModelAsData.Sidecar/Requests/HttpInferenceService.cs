using System.Diagnostics;
using System.Net;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using ModelAsData.Core;
using ModelAsData.Core.Onnx;
using ModelAsData.Core.Scoring;
using ModelAsData.Postgres;
using Npgsql;
using Prometheus;

namespace ModelAsData.Sidecar.Requests;

/// <summary>
/// The sidecar's HTTP endpoint (Kestrel): the Open Inference Protocol v2 REST API (<c>/v2/health/live</c>,
/// <c>/v2/health/ready</c>, <c>/v2/models/{name}[/versions/{v}]</c>, <c>…/infer</c>) and Prometheus <c>/metrics</c>.
/// A model name may be a reference (<c>iris@production</c>); <c>/versions/{v}</c> picks a version. Binds where
/// <see cref="SidecarOptions.Http"/> says (a port alone means loopback). Every request but health passes
/// <see cref="HttpDoorGate"/> first (bearer tokens, body size, where /metrics answers; <see cref="HttpDoorOptions"/>).
/// </summary>
public sealed partial class HttpInferenceService : IHostedService, IAsyncDisposable
{
    private readonly SidecarOptions _options;
    private readonly RequestModels _models;
    private readonly PredictionLog _log;
    private readonly RequestMetrics _metrics;
    private readonly ShadowQueue _shadows;
    private readonly NpgsqlDataSource _dataSource;
    private readonly ILogger _logger;
    private WebApplication? _app;

    public HttpInferenceService(SidecarOptions options, RequestModels models, PredictionLog log, RequestMetrics metrics, ShadowQueue shadows, NpgsqlDataSource dataSource,
        ILogger<HttpInferenceService> logger)
    {
        _shadows = shadows;
        _options = options;
        _models = models;
        _log = log;
        _metrics = metrics;
        _dataSource = dataSource;
        _logger = logger;
    }

    /// <summary>The address the endpoint listens on, once started (e.g. <c>http://127.0.0.1:8080</c>).</summary>
    public Uri? Address { get; private set; }

    /// <summary>Where /metrics listens when it has an address of its own (<c>--metrics host:port</c>), once started.</summary>
    public Uri? MetricsAddress { get; private set; }

    public async Task StartAsync(CancellationToken cancellationToken)
    {
        var endpoint = HttpEndpoint.Parse(_options.Http!);
        var door = _options.HttpDoor;
        var (metricsOnDoor, metricsOwn) = door.MetricsPlace(endpoint);
        var authenticator = new HttpTokenAuthenticator(_dataSource, door);
        var liveTokens = await authenticator.CountLiveTokensAsync(cancellationToken); // fails clearly when tokens cannot be checked at all
        var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions { EnvironmentName = Environments.Production });
        builder.Logging.ClearProviders();
        builder.WebHost.ConfigureKestrel(kestrel =>
        {
            kestrel.Limits.MaxRequestBodySize = door.MaxBodyBytes;
            kestrel.Listen(endpoint.Address, endpoint.Port);
            if (metricsOwn is not null)
            {
                kestrel.Listen(metricsOwn.Address, metricsOwn.Port);
            }
        });
        var app = builder.Build();
        app.Use(new HttpDoorGate(authenticator, door, metricsOnDoor, metricsOwn?.Port, _metrics, _logger).InvokeAsync);
        Map(app);
        await app.StartAsync(cancellationToken);
        _app = app;
        var bound = (app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()?.Addresses ?? [])
            .Select(a => new Uri(a.Replace("[::]", "localhost", StringComparison.Ordinal))).ToList();
        Address = bound.FirstOrDefault(a => metricsOwn is null || a.Port != metricsOwn.Port);
        MetricsAddress = metricsOwn is null ? null : bound.FirstOrDefault(a => a.Port == metricsOwn.Port);
        LogListening(_logger, Address?.ToString() ?? endpoint.ToString());
        WarnAboutExposure(endpoint, metricsOnDoor, metricsOwn, liveTokens);
    }

    private void WarnAboutExposure(HttpEndpoint endpoint, bool metricsOnDoor, HttpEndpoint? metricsOwn, long liveTokens)
    {
        if (!IPAddress.IsLoopback(endpoint.Address) && liveTokens == 0)
        {
            LogNoLiveTokens(_logger, endpoint.ToString());
        }

        var exposed = metricsOwn is not null ? (IPAddress.IsLoopback(metricsOwn.Address) ? null : metricsOwn) : metricsOnDoor && !IPAddress.IsLoopback(endpoint.Address) ? endpoint : null;
        if (exposed is not null)
        {
            LogMetricsExposed(_logger, exposed.ToString());
        }
    }

    public async Task StopAsync(CancellationToken cancellationToken)
    {
        if (_app is not null)
        {
            await _app.StopAsync(cancellationToken);
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (_app is not null)
        {
            await _app.DisposeAsync();
        }
    }

    private void Map(WebApplication app)
    {
        app.MapGet("/v2/health/live", () => Results.Json(new JsonObject { ["live"] = true }));
        app.MapGet("/v2/health/ready", ReadyAsync);
        app.MapGet("/v2", () => Results.Json(new JsonObject
        {
            ["name"] = "modelasdata",
            ["version"] = typeof(HttpInferenceService).Assembly.GetName().Version?.ToString() ?? "0",
            ["extensions"] = new JsonArray("binary_tensor_data"),
        }));
        app.MapGet("/v2/models/{name}", (string name, CancellationToken ct) => MetadataAsync(name, null, ct));
        app.MapGet("/v2/models/{name}/versions/{version}", (string name, string version, CancellationToken ct) => MetadataAsync(name, version, ct));
        app.MapGet("/v2/models/{name}/ready", (string name, CancellationToken ct) => ModelReadyAsync(name, null, ct));
        app.MapGet("/v2/models/{name}/versions/{version}/ready", (string name, string version, CancellationToken ct) => ModelReadyAsync(name, version, ct));
        app.MapPost("/v2/models/{name}/infer", (string name, HttpRequest request, CancellationToken ct) => InferAsync(name, null, request, ct));
        app.MapPost("/v2/models/{name}/versions/{version}/infer", (string name, string version, HttpRequest request, CancellationToken ct) => InferAsync(name, version, request, ct));
        app.MapGet("/metrics", async (HttpContext context) =>
        {
            context.Response.ContentType = "text/plain; version=0.0.4; charset=utf-8";
            await _metrics.Registry.CollectAndExportAsTextAsync(context.Response.Body, context.RequestAborted);
        });
    }

    private async Task<IResult> ReadyAsync(CancellationToken cancellationToken)
    {
        try
        {
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            timeout.CancelAfter(TimeSpan.FromSeconds(2));
            await using var command = _dataSource.CreateCommand("SELECT 1");
            await command.ExecuteScalarAsync(timeout.Token);
            return Results.Json(new JsonObject { ["ready"] = true });
        }
        catch (Exception e) when (e is NpgsqlException or OperationCanceledException or TimeoutException)
        {
            // The route needs no token, so the reason (it can name the login, host or database) goes to the log only.
            LogNotReady(_logger, e);
            return Results.Json(new JsonObject { ["ready"] = false, ["error"] = "The database does not answer; the sidecar's log says why." }, statusCode: 503);
        }
    }

    private async Task<IResult> MetadataAsync(string name, string? version, CancellationToken cancellationToken)
    {
        try
        {
            using var lease = await LoadAsync(name, version, cancellationToken);
            return Results.Json(OipMetadata.Describe(lease.Version));
        }
        catch (ModelAsDataException e)
        {
            return Error(e);
        }
    }

    private async Task<IResult> ModelReadyAsync(string name, string? version, CancellationToken cancellationToken)
    {
        try
        {
            using var lease = await LoadAsync(name, version, cancellationToken);
            return Results.Json(new JsonObject { ["name"] = lease.Version.Model, ["ready"] = true });
        }
        catch (ModelAsDataException e)
        {
            return Error(e);
        }
    }

    private async Task<IResult> InferAsync(string name, string? version, HttpRequest request, CancellationToken cancellationToken)
    {
        var started = Stopwatch.GetTimestamp();
        try
        {
            var (body, binary) = await OipBody.ReadAsync(request, cancellationToken);
            HttpLimits.CheckRows(body, _options.HttpDoor.MaxRows);
            var reference = ReferenceText(name, version);
            var (model, number) = await _models.ResolveAsync(reference, cancellationToken);
            // 017: the deployment's version for parameters.key (sticky), or a random draw at the canary's percent.
            var key = Key(body);
            var (served, arm) = await _models.RouteAsync(reference, model, number, key, cancellationToken);
            using var lease = await _models.AcquireAsync(model, served, cancellationToken);
            var loaded = lease.Version;
            var response = OipInference.Infer(loaded, body, binary, reference, _log, cancellationToken, arm, key);
            _metrics.Requests.WithLabels("http", "ok").Inc();
            _metrics.RowsScored.WithLabels(loaded.Model).Inc(response.Rows);
            // 025: a shadow that samples the inference scores it once the answer has been sent, off its path.
            if (await _models.ShadowAsync(reference, model, key, cancellationToken) is { } shadow)
            {
                request.HttpContext.Response.OnCompleted(() =>
                {
                    _shadows.Add(new ShadowWork("http", model, shadow, reference, null, null, body, binary, key));
                    return Task.CompletedTask;
                });
            }

            return response;
        }
        catch (ModelAsDataException e)
        {
            _metrics.Requests.WithLabels("http", "error").Inc();
            _metrics.Errors.WithLabels("http", e.Code.ToString()).Inc();
            return Error(e);
        }
        finally
        {
            _metrics.Latency.WithLabels("http").Observe(Stopwatch.GetElapsedTime(started).TotalSeconds);
        }
    }

    private async ValueTask<VersionLease> LoadAsync(string name, string? version, CancellationToken cancellationToken)
    {
        var (model, number) = await _models.ResolveAsync(ReferenceText(name, version), cancellationToken);
        return await _models.AcquireAsync(model, number, cancellationToken);
    }

    /// <summary>The request's <c>parameters.key</c> as canonical key text: a string as is, an integer in decimal.</summary>
    private static string? Key(JsonObject body) => body["parameters"] is JsonObject parameters && parameters["key"] is JsonValue key
        ? key.TryGetValue<long>(out var number) ? Core.Deployments.StickyBucket.KeyText(number)
          : key.TryGetValue<string>(out var text) ? text
          : throw new ModelAsDataException(ErrorCode.InvalidArgument, "parameters.key is the row's key: a string or an integer (a composite key: its values joined by U+001F).")
        : null;

    private static string ReferenceText(string name, string? version) => version is null ? name : $"{name}@{version}";

    /// <summary>OIP errors are <c>{"error": "..."}</c>; the status says whose fault it is.</summary>
    private static IResult Error(ModelAsDataException e) => Results.Json(new JsonObject { ["error"] = e.Message }, statusCode: e.Code switch
    {
        ErrorCode.NotFound => (int)HttpStatusCode.NotFound,
        ErrorCode.InvalidName or ErrorCode.InvalidArgument or ErrorCode.FeatureMismatch => (int)HttpStatusCode.BadRequest,
        ErrorCode.NotReady => (int)HttpStatusCode.Conflict,
        ErrorCode.PermissionDenied => (int)HttpStatusCode.Forbidden,
        ErrorCode.Database or ErrorCode.Timeout => (int)HttpStatusCode.ServiceUnavailable,
        _ => (int)HttpStatusCode.InternalServerError,
    });

    [LoggerMessage(EventId = Protocol.LogEvents.HttpListening, Level = LogLevel.Information, Message = "HTTP endpoint (Open Inference Protocol v2, /metrics) listening on {Address}")]
    private static partial void LogListening(ILogger logger, string address);

    [LoggerMessage(EventId = Protocol.LogEvents.HttpNoLiveTokens, Level = LogLevel.Warning,
        Message = "HTTP door on {Address} is NOT loopback and NO live token exists: every request but /v2/health/* gets 401. Create one: mad tokens create --role <role> --label <label> (docs/SECURITY.md, \"The HTTP door\")")]
    private static partial void LogNoLiveTokens(ILogger logger, string address);

    [LoggerMessage(EventId = Protocol.LogEvents.HttpMetricsExposed, Level = LogLevel.Warning,
        Message = "/metrics is served without a token on {Address}, which is not loopback: its labels name your models. Keep that address off public networks, or use --metrics off")]
    private static partial void LogMetricsExposed(ILogger logger, string address);

    [LoggerMessage(EventId = Protocol.LogEvents.HttpNotReady, Level = LogLevel.Warning, Message = "/v2/health/ready answered 503: the database did not answer SELECT 1")]
    private static partial void LogNotReady(ILogger logger, Exception exception);
}

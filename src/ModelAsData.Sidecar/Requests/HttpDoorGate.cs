using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;
using ModelAsData.Core;
using ModelAsData.Postgres;
using Prometheus;

namespace ModelAsData.Sidecar.Requests;

/// <summary>
/// The middleware every HTTP request passes before any endpoint: health stays open (KServe probes it without a
/// token); <c>/metrics</c> answers only where <see cref="HttpDoorOptions.Metrics"/> put it; everything else needs a
/// bearer token whose role may score (401 without one, 403 when the role may not), so that no answer to a stranger
/// says which models exist. Bodies over <see cref="HttpDoorOptions.MaxBodyBytes"/> get 413. Errors are the Open
/// Inference Protocol's <c>{"error": "…"}</c>. Thread-safe.
/// </summary>
internal sealed partial class HttpDoorGate
{
    private const string Unauthenticated = "This endpoint needs a bearer token: send `Authorization: Bearer <token>`. An administrator creates one with `mad tokens create --role <role> --label <label>` (docs/SECURITY.md, \"The HTTP door\").";
    private const string InvalidToken = "The bearer token is not valid (unknown, revoked or expired). Ask an administrator for a new one (`mad tokens create`).";

    // Readable in a terminal (curl): the body is JSON served as application/json, never inlined into HTML.
    private static readonly JsonSerializerOptions s_json = new() { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    private readonly HttpTokenAuthenticator _authenticator;
    private readonly HttpDoorOptions _options;
    private readonly bool _metricsOnDoor;
    private readonly int? _metricsPort;
    private readonly Counter _refused;
    private readonly ILogger _logger;

    public HttpDoorGate(HttpTokenAuthenticator authenticator, HttpDoorOptions options, bool metricsOnDoor, int? metricsPort, RequestMetrics metrics, ILogger logger)
    {
        _authenticator = authenticator;
        _options = options;
        _metricsOnDoor = metricsOnDoor;
        _metricsPort = metricsPort;
        _logger = logger;
        _refused = Metrics.WithCustomRegistry(metrics.Registry).CreateCounter("mad_http_refused_total",
            "HTTP requests the door refused before scoring, by reason (unauthenticated, invalid_token, forbidden, body_too_large, unavailable).",
            new CounterConfiguration { LabelNames = ["reason"] });
    }

    public async Task InvokeAsync(HttpContext context, RequestDelegate next)
    {
        var path = context.Request.Path;
        var isMetrics = path.Equals("/metrics", StringComparison.Ordinal);
        if (_metricsPort is { } port && context.Connection.LocalPort == port)
        {
            // The metrics listener serves /metrics and nothing else.
            await (isMetrics ? next(context) : WriteAsync(context, StatusCodes.Status404NotFound, "Only /metrics is served on this address."));
            return;
        }

        if (isMetrics)
        {
            await (_metricsOnDoor ? next(context) : WriteAsync(context, StatusCodes.Status404NotFound,
                "/metrics is off on this address: start the sidecar with `--metrics on` or `--metrics host:port`."));
            return;
        }

        if (path.Equals("/v2/health/live", StringComparison.Ordinal) || path.Equals("/v2/health/ready", StringComparison.Ordinal))
        {
            await next(context);
            return;
        }

        HttpCaller caller;
        try
        {
            caller = await _authenticator.AuthenticateAsync(context.Request.Headers.Authorization.ToString(), context.RequestAborted);
        }
        catch (ModelAsDataException e)
        {
            _refused.WithLabels("unavailable").Inc();
            LogCheckFailed(_logger, e.Message);
            await WriteAsync(context, StatusCodes.Status503ServiceUnavailable, "The bearer token cannot be checked now (the database does not answer): try again shortly.");
            return;
        }

        switch (caller.Kind)
        {
            case HttpCallerKind.Anonymous:
                _refused.WithLabels("unauthenticated").Inc();
                context.Response.Headers.WWWAuthenticate = "Bearer realm=\"mad\"";
                await WriteAsync(context, StatusCodes.Status401Unauthorized, Unauthenticated);
                return;
            case HttpCallerKind.InvalidToken:
                _refused.WithLabels("invalid_token").Inc();
                context.Response.Headers.WWWAuthenticate = "Bearer realm=\"mad\", error=\"invalid_token\"";
                await WriteAsync(context, StatusCodes.Status401Unauthorized, InvalidToken);
                return;
            case HttpCallerKind.Forbidden:
                _refused.WithLabels("forbidden").Inc();
                await WriteAsync(context, StatusCodes.Status403Forbidden,
                    $"The token '{caller.Label}' acts as role '{caller.Role}', which may not score: it needs EXECUTE on mad.submit_request and role mad_user, as CALL mad.predict does. An administrator can run: GRANT mad_user TO \"{caller.Role}\";");
                return;
        }

        if (context.Request.ContentLength > _options.MaxBodyBytes)
        {
            await RefuseTooLargeAsync(context);
            return;
        }

        try
        {
            await next(context);
        }
        catch (BadHttpRequestException e) when (e.StatusCode == StatusCodes.Status413PayloadTooLarge && !context.Response.HasStarted)
        {
            // A chunked body without Content-Length: Kestrel stops reading at the limit.
            await RefuseTooLargeAsync(context);
        }
    }

    private Task RefuseTooLargeAsync(HttpContext context)
    {
        _refused.WithLabels("body_too_large").Inc();
        return WriteAsync(context, StatusCodes.Status413PayloadTooLarge,
            $"The request body is larger than this sidecar takes ({_options.MaxBodyBytes:N0} bytes): send fewer rows per request, or raise `mad serve --http-max-body-bytes`.");
    }

    /// <summary>The Open Inference Protocol's error form.</summary>
    internal static Task WriteAsync(HttpContext context, int status, string message)
    {
        context.Response.StatusCode = status;
        context.Response.ContentType = "application/json";
        return context.Response.WriteAsync(new JsonObject { ["error"] = message }.ToJsonString(s_json), context.RequestAborted);
    }

    [LoggerMessage(EventId = Protocol.LogEvents.HttpTokenCheckFailed, Level = LogLevel.Warning, Message = "HTTP door: a bearer token could not be checked: {Reason}")]
    private static partial void LogCheckFailed(ILogger logger, string reason);
}

using System.Globalization;
using System.Net;

namespace ModelAsData.Sidecar.Requests;

/// <summary>
/// The HTTP door's limits and switches (<c>mad serve --http …</c>); each has a <c>MAD_*</c> environment default.
/// Validated with the door's address by <see cref="Validate"/>.
/// </summary>
public sealed record HttpDoorOptions
{
    /// <summary>The largest request body, in bytes (4 MiB); larger ones get 413. <c>MAD_HTTP_MAX_BODY_BYTES</c>.</summary>
    public long MaxBodyBytes { get; init; } = EnvironmentLong("MAD_HTTP_MAX_BODY_BYTES") ?? 4L * 1024 * 1024;

    /// <summary>The most rows one inference may carry (the first dimension of its inputs); more get 400. <c>MAD_HTTP_MAX_ROWS</c>.</summary>
    public int MaxRows { get; init; } = (int?)EnvironmentLong("MAD_HTTP_MAX_ROWS") ?? 10_000;

    /// <summary>
    /// Where <c>/metrics</c> is served: <c>on</c> (on the door's address), <c>off</c>, or <c>host:port</c> of its
    /// own. Null: on when the door binds loopback, off otherwise (metrics name the models). <c>MAD_METRICS</c>.
    /// </summary>
    public string? Metrics { get; init; } = Environment.GetEnvironmentVariable("MAD_METRICS") is { Length: > 0 } metrics ? metrics : null;

    /// <summary>
    /// How long the answer for one token (its role, whether it may score, or that it is unknown) is reused before the
    /// database is asked again: the longest a revoked token or grant still works. <c>MAD_HTTP_AUTH_CACHE_SECONDS</c>.
    /// </summary>
    public TimeSpan AuthCacheTime { get; init; } = TimeSpan.FromSeconds(EnvironmentLong("MAD_HTTP_AUTH_CACHE_SECONDS") ?? 5);

    /// <summary>Throws <see cref="ArgumentException"/> naming the setting when one makes no sense for a door at <paramref name="door"/>.</summary>
    public void Validate(HttpEndpoint door)
    {
        if (MaxBodyBytes < 1024)
        {
            throw new ArgumentOutOfRangeException(nameof(MaxBodyBytes), MaxBodyBytes, "The HTTP body limit must be at least 1024 bytes.");
        }

        if (MaxRows < 1)
        {
            throw new ArgumentOutOfRangeException(nameof(MaxRows), MaxRows, "The HTTP row limit must be at least 1.");
        }

        if (AuthCacheTime < TimeSpan.Zero || AuthCacheTime > TimeSpan.FromMinutes(5))
        {
            throw new ArgumentOutOfRangeException(nameof(AuthCacheTime), AuthCacheTime, "The token cache time must be 0 to 300 seconds.");
        }

        if (MetricsPlace(door).Own is { } own && own.Port == door.Port && own.Port != 0)
        {
            throw new ArgumentException($"--metrics {own} has the HTTP door's port: give /metrics another port, or `--metrics on` to serve it on the door.", nameof(Metrics));
        }
    }

    /// <summary>Where /metrics goes for a door at <paramref name="door"/>: on the door, on an address of its own, or nowhere.</summary>
    public (bool OnDoor, HttpEndpoint? Own) MetricsPlace(HttpEndpoint door) => Metrics?.Trim().ToLowerInvariant() switch
    {
        null or "" => (IPAddress.IsLoopback(door.Address), null),
        "on" => (true, null),
        "off" => (false, null),
        _ => (false, ParseMetricsAddress(Metrics)),
    };

    private static HttpEndpoint ParseMetricsAddress(string text)
    {
        try
        {
            return HttpEndpoint.Parse(text);
        }
        catch (Core.ModelAsDataException)
        {
            throw new ArgumentException($"--metrics takes on, off or host:port (e.g. 127.0.0.1:9464), not '{text}'.", nameof(Metrics));
        }
    }

    private static long? EnvironmentLong(string name) =>
        long.TryParse(Environment.GetEnvironmentVariable(name), NumberStyles.Integer, CultureInfo.InvariantCulture, out var value) ? value : null;
}

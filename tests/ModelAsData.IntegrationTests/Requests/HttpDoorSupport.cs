using System.Net.Http.Headers;
using Microsoft.Extensions.DependencyInjection;
using ModelAsData.Sidecar;
using ModelAsData.Sidecar.Requests;

namespace ModelAsData.IntegrationTests.Requests;

/// <summary>Shared steps of the HTTP door's tests: a token for a role (roles come from <see cref="Hostile.HostileRoles"/>, which drops them), a sidecar with HTTP on a free loopback port, a client.</summary>
internal static class HttpDoorSupport
{
    /// <summary>A token acting as <paramref name="role"/>, created as an administrator would (SELECT mad.create_http_token).</summary>
    public static Task<string> TokenAsync(PostgresDatabase database, string role, string? label = null) =>
        database.DataSource.ScalarAsync<string>("SELECT mad.create_http_token(@role::name, @label)", new { role, label = label ?? Sql.UniqueName("t").Replace('_', '-') });

    /// <summary>A sidecar whose HTTP door listens on <paramref name="http"/> (default: a free loopback port).</summary>
    public static Task<RunningSidecar> StartAsync(PostgresDatabase database, Func<SidecarOptions, SidecarOptions>? configure = null, string? http = null) =>
        StartAsync(database, database.ConnectionString, configure, http);

    /// <summary>As above, with the sidecar logged in by <paramref name="connectionString"/> (e.g. a plain mad_sidecar login).</summary>
    public static async Task<RunningSidecar> StartAsync(PostgresDatabase database, string connectionString, Func<SidecarOptions, SidecarOptions>? configure = null, string? http = null)
    {
        var options = new SidecarOptions { PollInterval = TimeSpan.FromMinutes(5), SidecarId = Sql.UniqueName("sidecar"), Http = http ?? $"127.0.0.1:{RequestSupport.FreePort()}" };
        options = configure?.Invoke(options) ?? options;
        var sidecar = await RunningSidecar.StartAsync(connectionString, options);
        await RequestSupport.WaitForWorkerAsync(database, options.SidecarId);
        return sidecar;
    }

    /// <summary>A real HTTP client for the sidecar's door, sending <paramref name="token"/> as a bearer token when given.</summary>
    public static HttpClient Client(RunningSidecar sidecar, string? token = null)
    {
        var http = new HttpClient { BaseAddress = sidecar.Services.GetRequiredService<HttpInferenceService>().Address };
        if (token is not null)
        {
            http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", token);
        }

        return http;
    }

    /// <summary>An OIP inference body of <paramref name="rows"/> iris rows.</summary>
    public static string IrisBody(int rows)
    {
        var data = string.Join(", ", Enumerable.Repeat("5.1, 3.5, 1.4, 0.2", rows));
        return $$"""{"inputs": [{"name": "float_input", "shape": [{{rows}}, 4], "datatype": "FP32", "data": [{{data}}]}]}""";
    }

    public static StringContent Json(string body) => new(body, System.Text.Encoding.UTF8, "application/json");
}

using Microsoft.Extensions.DependencyInjection;

namespace ModelAsData.Sidecar.Requests;

/// <summary>Registers online scoring in the sidecar: the request worker, the prediction log, metrics and (when asked) HTTP.</summary>
public static class RequestServiceCollectionExtensions
{
    public static IServiceCollection AddModelAsDataRequests(this IServiceCollection services, SidecarOptions options)
    {
        services.AddSingleton<RequestMetrics>();
        services.AddSingleton<RequestModels>();
        services.AddSingleton<PredictionLog>();
        services.AddHostedService<PredictionLogWriter>();
        services.AddSingleton<ShadowQueue>();
        services.AddHostedService<ShadowWorker>();
        services.AddHostedService<RequestWorker>();
        if (options.Http is not null)
        {
            services.AddSingleton<HttpInferenceService>();
            services.AddHostedService(provider => provider.GetRequiredService<HttpInferenceService>());
        }

        return services;
    }
}

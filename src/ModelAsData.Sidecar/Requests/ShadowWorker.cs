using Microsoft.Extensions.Hosting;
using ModelAsData.Core.Deployments;
using ModelAsData.Core.Scoring;

namespace ModelAsData.Sidecar.Requests;

/// <summary>
/// Scores what <see cref="ShadowQueue"/> holds with its shadow version, one prediction at a time on a thread of its
/// own, and logs each in <c>mad.prediction_log</c> with arm <c>shadow</c>, the shadow version and the request's id
/// (025). A shadow that fails to load or score is logged with its error; one that failed to load is not tried again
/// for <see cref="RetryAfter"/>, so a broken shadow does not reload its bytes for every request. Never answers anyone.
/// </summary>
internal sealed class ShadowWorker(ShadowQueue queue, RequestModels models, PredictionLog log) : BackgroundService
{
    private static readonly TimeSpan RetryAfter = TimeSpan.FromSeconds(10);

    private readonly Dictionary<(string Model, int Version), (DateTime Until, string Error)> _broken = [];

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        try
        {
            await foreach (var work in queue.Reader.ReadAllAsync(stoppingToken))
            {
                await ScoreAsync(work, stoppingToken);
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
            // Stopping: what waits is dropped with the process, as the shadow is never owed to anyone.
        }
    }

    private async Task ScoreAsync(ShadowWork work, CancellationToken cancellationToken)
    {
        var now = DateTime.UtcNow;
        string? error = null;
        if (_broken.TryGetValue((work.Model, work.Version), out var broken) && broken.Until > now)
        {
            error = broken.Error;
        }
        else
        {
            VersionLease? lease = null;
            try
            {
                lease = await models.AcquireAsync(work.Model, work.Version, cancellationToken);
            }
            catch (Exception e) when (e is not OperationCanceledException)
            {
                error = $"The shadow {work.Model}@{work.Version} failed to load: {e.Message}";
                _broken[(work.Model, work.Version)] = (now + RetryAfter, error);
            }

            if (lease is not null)
            {
                using (lease)
                {
                    error = Score(lease.Version, work, cancellationToken);
                }
            }
        }

        if (error is null)
        {
            queue.Scored.Inc();
            return;
        }

        queue.Failed.Inc();
        var inputs = work.Features ?? JsonbText.Write(work.Body!["inputs"]);
        log.Add(new PredictionLogEntry(now, work.Door, work.Model, work.Version, PredictionLog.Hash(inputs), null, error, work.RequestId, Arms.Shadow));
    }

    /// <summary>Scores and logs the work; returns why it failed, or null.</summary>
    private string? Score(RequestVersion version, ShadowWork work, CancellationToken cancellationToken)
    {
        try
        {
            if (work.Body is { } body)
            {
                OipInference.Shadow(version, body, work.Binary, work.Reference, log, cancellationToken, work.Key);
                return null;
            }

            var result = version.Predict(JsonFeatures.Parse(work.Features!), work.Reference, cancellationToken);
            log.Add(new PredictionLogEntry(DateTime.UtcNow, work.Door, work.Model, work.Version, PredictionLog.Hash(work.Features!), result, null, work.RequestId, Arms.Shadow));
            return null;
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            return $"The shadow {work.Model}@{work.Version} failed to score: {e.Message}";
        }
    }
}

using System.Diagnostics;
using System.Text.Json.Nodes;
using ModelAsData.Core.Scoring;
using ModelAsData.Core;
using ModelAsData.Postgres;
using Npgsql;

namespace ModelAsData.Sidecar.Requests;

/// <summary>
/// Scores one request into its answer (the result, or the error with the SQLSTATE its caller raises), counting it
/// in the metrics and the prediction log.
/// </summary>
internal sealed class RequestScorer(RequestModels models, PredictionLog log, RequestMetrics metrics)
{
    public async Task<JsonObject> ScoreAsync(ClaimedRequest request, CancellationToken cancellationToken)
    {
        var started = Stopwatch.GetTimestamp();
        var hash = PredictionLog.Hash(request.Features);
        try
        {
            using var lease = await models.AcquireAsync(request.Model, request.Version, cancellationToken);
            var result = lease.Version.Predict(JsonFeatures.Parse(request.Features), request.Reference, cancellationToken);
            metrics.RowsScored.WithLabels(request.Model).Inc();
            metrics.Requests.WithLabels(request.Kind, "ok").Inc();
            log.Add(new PredictionLogEntry(DateTime.UtcNow, request.Kind, request.Model, request.Version, hash, result, null, request.Id));
            return new JsonObject { ["id"] = request.Id, ["result"] = result };
        }
        catch (ModelAsDataException e)
        {
            metrics.Requests.WithLabels(request.Kind, "error").Inc();
            metrics.Errors.WithLabels(request.Kind, e.Code.ToString()).Inc();
            log.Add(new PredictionLogEntry(DateTime.UtcNow, request.Kind, request.Model, request.Version, hash, null, e.Message, request.Id));
            return new JsonObject { ["id"] = request.Id, ["error"] = e.Message, ["code"] = SqlState(e.Code) };
        }
        finally
        {
            metrics.Latency.WithLabels(request.Kind).Observe(Stopwatch.GetElapsedTime(started).TotalSeconds);
        }
    }

    /// <summary>The SQLSTATE a failed request raises in its caller, so that clients branch on it as on any other.</summary>
    internal static string SqlState(ErrorCode code) => code switch
    {
        ErrorCode.FeatureMismatch or ErrorCode.InvalidArgument => Protocol.SqlStates.FeatureMismatch,
        ErrorCode.NotFound => PostgresErrorCodes.NoDataFound,
        ErrorCode.NotReady => Protocol.SqlStates.NotReady,
        ErrorCode.InvalidName => PostgresErrorCodes.InvalidName,
        ErrorCode.InvalidModel => Protocol.SqlStates.InvalidModel,
        ErrorCode.Timeout => Protocol.SqlStates.Timeout,
        _ => PostgresErrorCodes.InternalError,
    };
}

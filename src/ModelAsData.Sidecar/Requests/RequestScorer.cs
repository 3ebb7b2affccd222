using System.Diagnostics;
using System.Text.Json.Nodes;
using ModelAsData.Core.Onnx;
using ModelAsData.Core.Scoring;
using ModelAsData.Core;
using ModelAsData.Postgres;
using Npgsql;

namespace ModelAsData.Sidecar.Requests;

/// <summary>
/// Scores a claimed batch of requests into their answers (the result, or the error with the SQLSTATE its caller
/// raises), in one ONNX Runtime call per model version; counts each in the metrics and the prediction log. Features
/// that do not fit fail their own request only; so do rows ONNX Runtime fails on, as <see cref="ModelScorer.Score"/>
/// gives each its own error (it scores a failed batch again in halves down to the row) and the other rows their scores.
/// </summary>
internal sealed class RequestScorer(RequestModels models, PredictionLog log, RequestMetrics metrics, ShadowQueue? shadows = null)
{
    /// <summary>Queues the requests a shadow samples (025); call it once their answers are committed.</summary>
    public void QueueShadows(IReadOnlyList<ClaimedRequest> requests)
    {
        if (shadows is null)
        {
            return;
        }

        foreach (var request in requests)
        {
            if (request.ShadowVersion is { } version)
            {
                shadows.Add(new ShadowWork(request.Kind, request.Model, version, request.Reference, request.Features, request.Id));
            }
        }
    }

    public async Task<JsonArray> ScoreAsync(IReadOnlyList<ClaimedRequest> requests, CancellationToken cancellationToken)
    {
        var started = Stopwatch.GetTimestamp();
        var answers = new JsonObject[requests.Count];
        foreach (var group in Enumerable.Range(0, requests.Count).GroupBy(i => (requests[i].Model, requests[i].Version)))
        {
            VersionLease lease;
            try
            {
                lease = await models.AcquireAsync(group.Key.Model, group.Key.Version, cancellationToken);
            }
            catch (ModelAsDataException e)
            {
                foreach (var i in group)
                {
                    answers[i] = Failed(requests[i], e);
                }

                continue;
            }

            using (lease) // the version stays loaded (not evicted) while its batch scores
            {
                ScoreVersion(lease.Version, requests, group.ToList(), answers, cancellationToken);
            }
        }

        var elapsed = Stopwatch.GetElapsedTime(started).TotalSeconds;
        foreach (var request in requests)
        {
            metrics.Latency.WithLabels(request.Kind).Observe(elapsed);
        }

        return new JsonArray(answers);
    }

    private void ScoreVersion(RequestVersion version, IReadOnlyList<ClaimedRequest> requests, List<int> indexes, JsonObject[] answers, CancellationToken cancellationToken)
    {
        var scorer = version.Rent(indexes.Count);
        try
        {
            var rows = new List<int>(indexes.Count);
            foreach (var i in indexes)
            {
                try
                {
                    JsonFeatures.AddRow(scorer, JsonFeatures.Parse(requests[i].Features), requests[i].Reference);
                    rows.Add(i);
                }
                catch (ModelAsDataException e)
                {
                    answers[i] = Failed(requests[i], e);
                }
            }

            if (rows.Count == 0)
            {
                return;
            }

            ScoredBatch scored;
            try
            {
                scored = scorer.Score(cancellationToken);
            }
            catch (ModelAsDataException e)
            {
                // Not a row's failure (those come back in scored.Error): every request of the call gets it.
                foreach (var i in rows)
                {
                    answers[i] = Failed(requests[i], e);
                }

                return;
            }

            for (var row = 0; row < rows.Count; row++)
            {
                var request = requests[rows[row]];
                if (scored.Error(row) is { } error)
                {
                    // ONNX Runtime failed on this request's row of a grouped batch; the others are answered.
                    answers[rows[row]] = Failed(request, new ModelAsDataException(ErrorCode.FeatureMismatch, error));
                    continue;
                }

                var result = RequestPredictor.ToJson(scored, version.Model, version.Version, row);
                metrics.RowsScored.WithLabels(request.Model).Inc();
                metrics.Requests.WithLabels(request.Kind, "ok").Inc();
                log.Add(new PredictionLogEntry(DateTime.UtcNow, request.Kind, request.Model, request.Version, PredictionLog.Hash(request.Features), result, null, request.Id, Features: request.Features));
                answers[rows[row]] = new JsonObject { ["id"] = request.Id, ["result"] = result };
            }
        }
        finally
        {
            version.Return(scorer);
        }
    }

    private JsonObject Failed(ClaimedRequest request, ModelAsDataException e)
    {
        metrics.Requests.WithLabels(request.Kind, "error").Inc();
        metrics.Errors.WithLabels(request.Kind, e.Code.ToString()).Inc();
        log.Add(new PredictionLogEntry(DateTime.UtcNow, request.Kind, request.Model, request.Version, PredictionLog.Hash(request.Features), null, e.Message, request.Id, Features: request.Features));
        return new JsonObject { ["id"] = request.Id, ["error"] = e.Message, ["code"] = SqlState(e.Code) };
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

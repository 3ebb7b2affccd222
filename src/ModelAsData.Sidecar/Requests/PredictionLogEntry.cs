using System.Text.Json.Nodes;

namespace ModelAsData.Sidecar.Requests;

/// <summary>One online prediction, as <c>mad.prediction_log</c> keeps it.</summary>
/// <param name="Door">call, async or http.</param>
/// <param name="InputsSha256">sha256 (hex) of the features' jsonb text: <c>mad.inputs_hash(features)</c>.</param>
/// <param name="Outputs">The answer, or null when it failed.</param>
/// <param name="Arm">The deployment's arm that served it (017); a request's own arm wins in the log (its trigger).</param>
/// <param name="Features">The features' JSON text, for drift monitoring (counted by the log writer, then dropped); null: not counted.</param>
public sealed record PredictionLogEntry(
    DateTime PredictedAt, string Door, string Model, int Version, string InputsSha256, JsonObject? Outputs, string? Error, long? RequestId,
    string Arm = Core.Deployments.Arms.Champion, string? Features = null);

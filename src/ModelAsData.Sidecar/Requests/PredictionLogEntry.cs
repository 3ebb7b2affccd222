using System.Text.Json.Nodes;

namespace ModelAsData.Sidecar.Requests;

/// <summary>One online prediction, as <c>mad.prediction_log</c> keeps it.</summary>
/// <param name="Door">call, async or http.</param>
/// <param name="InputsSha256">sha256 (hex) of the features' jsonb text: <c>mad.inputs_hash(features)</c>.</param>
/// <param name="Outputs">The answer, or null when it failed.</param>
/// <param name="Arm">The deployment's arm that served it (017); a request's own arm wins in the log (its trigger).</param>
/// <param name="Features">The features' JSON text, for drift monitoring (counted by the log writer, then dropped); null: not counted.</param>
/// <param name="Key">The caller's key of an HTTP inference (parameters.key), which links it to its outcome (051); the
/// SQL doors' rows get theirs from their request, in the database. With a key, the features are written to the log
/// too, where they are kept only while the model's online traffic has outcomes bound.</param>
public sealed record PredictionLogEntry(
    DateTime PredictedAt, string Door, string Model, int Version, string InputsSha256, JsonObject? Outputs, string? Error, long? RequestId,
    string Arm = Core.Deployments.Arms.Champion, string? Features = null, string? Key = null);

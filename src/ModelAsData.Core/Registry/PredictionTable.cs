using System.Text.Json.Nodes;
using ModelAsData.Core.Onnx;

namespace ModelAsData.Core.Registry;

/// <summary>What to bind: a model reference to a source table, rows identified by key columns.</summary>
/// <param name="Features">Model input → column(s); null maps inputs to columns by name (or by the model's metadata key <c>features</c>).</param>
public sealed record PredictionTableSpec(string Name, string Source, IReadOnlyList<string> Key, string Model, JsonObject? Features);

/// <summary>A prediction table: its binding, the table analysts join, and its last refresh.</summary>
/// <param name="OutputTable">The table of predictions, e.g. <c>mad_out_churn_scores</c> or <c>mad_out.churn_scores</c>.</param>
public sealed record PredictionTable(
    string Name,
    string Source,
    IReadOnlyList<string> Key,
    string Model,
    JsonObject Features,
    IReadOnlyList<OutputColumn> Columns,
    string OutputTable,
    DateTimeOffset? RefreshedAt,
    int? RefreshedVersion,
    long? RowsScored,
    long? RowsFailed);

/// <summary>How far a refresh has come.</summary>
public readonly record struct RefreshProgress(long RowsDone, long RowsTotal);

/// <summary>What a finished refresh did: rows scored by which version, and how many got an error instead.</summary>
public sealed record RefreshResult(string Name, ModelVersion Version, long Rows, long Failed, TimeSpan Elapsed);

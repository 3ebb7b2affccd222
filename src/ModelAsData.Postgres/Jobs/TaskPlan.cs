using System.Text.Json;
using System.Text.Json.Serialization;
using ModelAsData.Core.Onnx;

namespace ModelAsData.Postgres.Jobs;

/// <summary>
/// How to run one task, as <c>mad.task_plan</c> builds it: the statement that reads the task's key range (keys first,
/// then each feature column once, in the type it arrives in), the build table, and which column feeds each slot.
/// Identifiers in <see cref="Query"/> and <see cref="BuildTable"/> were quoted by the server.
/// </summary>
internal sealed class TaskPlan
{
    public string Query { get; set; } = "";

    public string BuildTable { get; set; } = "";

    public string[] KeyColumns { get; set; } = [];

    public string[] KeyTypes { get; set; } = [];

    public string[] FeatureColumns { get; set; } = [];

    public string[] FeatureTypes { get; set; } = [];

    /// <summary>For each model slot, the index of its column in <see cref="FeatureColumns"/>.</summary>
    public int[] Slots { get; set; } = [];

    public List<OutputColumn> Columns { get; set; } = [];

    public static TaskPlan Parse(string json) =>
        JsonSerializer.Deserialize<TaskPlan>(json, s_options) ?? throw new InvalidDataException("mad.task_plan returned nothing.");

    private static readonly JsonSerializerOptions s_options = new(ModelSignature.JsonOptions)
    {
        UnmappedMemberHandling = JsonUnmappedMemberHandling.Skip,
    };
}

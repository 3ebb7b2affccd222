using System.Text.Json;
using System.Text.Json.Serialization;
using ModelAsData.Core.Onnx;

namespace ModelAsData.Postgres.Jobs;

/// <summary>
/// What a refresh task and a streaming batch both need to read and score a binding's rows, as the server's plan
/// functions build it: the statement that reads them (keys first, then each feature column once, in the type
/// <c>mad.feature_reads</c> gives it), which column feeds each model slot, and the output's decoded columns.
/// Identifiers in the statements were quoted by the server.
/// </summary>
internal abstract class ReadPlan
{
    private static readonly JsonSerializerOptions s_options = new(ModelSignature.JsonOptions)
    {
        UnmappedMemberHandling = JsonUnmappedMemberHandling.Skip,
    };

    public string Query { get; set; } = "";

    public string[] KeyColumns { get; set; } = [];

    public string[] FeatureColumns { get; set; } = [];

    /// <summary>The type each feature column arrives in.</summary>
    public string[] FeatureTypes { get; set; } = [];

    /// <summary>For each model slot, the index of its column in <see cref="FeatureColumns"/>.</summary>
    public int[] Slots { get; set; } = [];

    public List<OutputColumn> Columns { get; set; } = [];

    protected static T Parse<T>(string json, string function) where T : ReadPlan =>
        JsonSerializer.Deserialize<T>(json, s_options) ?? throw new InvalidDataException($"{function} returned nothing.");
}

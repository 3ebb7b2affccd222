using System.Text.Json;
using System.Text.Json.Serialization;
using ModelAsData.Core.Onnx;

namespace ModelAsData.Postgres.Streaming;

/// <summary>
/// How to stream one watched table, as <c>mad.stream_plan</c> builds it: the read of the claimed keys' current rows
/// (keys as text, then each feature column once), the upsert of scored rows from arrays, the delete of claimed keys
/// whose rows are gone, and the model version to score with. Identifiers in the statements were quoted by the server.
/// </summary>
internal sealed class StreamPlan
{
    public string Query { get; set; } = "";

    public string Upsert { get; set; } = "";

    public string Delete { get; set; } = "";

    public string[] KeyColumns { get; set; } = [];

    public string[] FeatureColumns { get; set; } = [];

    /// <summary>The type each feature column arrives in (<c>mad.feature_reads</c>).</summary>
    public string[] FeatureTypes { get; set; } = [];

    /// <summary>For each model slot, the index of its column in <see cref="FeatureColumns"/>.</summary>
    public int[] Slots { get; set; } = [];

    public List<OutputColumn> Columns { get; set; } = [];

    public string Model { get; set; } = "";

    public int Version { get; set; }

    public string Sha256 { get; set; } = "";

    public static StreamPlan Parse(string json) =>
        JsonSerializer.Deserialize<StreamPlan>(json, s_options) ?? throw new InvalidDataException("mad.stream_plan returned nothing.");

    private static readonly JsonSerializerOptions s_options = new(ModelSignature.JsonOptions)
    {
        UnmappedMemberHandling = JsonUnmappedMemberHandling.Skip,
    };
}

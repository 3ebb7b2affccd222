using ModelAsData.Postgres.Jobs;

namespace ModelAsData.Postgres.Streaming;

/// <summary>
/// How to stream one watched table, as <c>mad.stream_plan</c> builds it: the claim of a batch of its outbox, the read
/// of the claimed keys' current rows (keys as text), the upsert of scored rows from arrays, the delete of claimed keys
/// whose rows are gone, and the model version to score with.
/// </summary>
internal sealed class StreamPlan : ReadPlan
{
    /// <summary>$1 most outbox rows: claims them and returns the number of distinct keys and the version to score with.</summary>
    public string Claim { get; set; } = "";

    public string Upsert { get; set; } = "";

    public string Delete { get; set; } = "";

    public string Model { get; set; } = "";

    public int Version { get; set; }

    public string Sha256 { get; set; } = "";

    public static StreamPlan Parse(string json) => Parse<StreamPlan>(json, "mad.stream_plan");
}

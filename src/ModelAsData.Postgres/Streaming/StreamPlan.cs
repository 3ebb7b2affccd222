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

    /// <summary>
    /// <c>SET LOCAL ROLE</c> to the binding's owner: sent in the claim's batch right before <see cref="ReadPlan.Query"/>
    /// (and <see cref="StreamSql.ResetRole"/> right after it), so the read runs with the owner's rights and nothing else does.
    /// </summary>
    public string ReadAs { get; set; } = "";

    /// <summary>The alias the table is served through (null: a version reference, never routed). 019.</summary>
    public string? Alias { get; set; }

    /// <summary>The alias's canary when the plan was made (null: none); a batch that finds another plans again. 019.</summary>
    public int? CanaryVersion { get; set; }

    public string? CanarySha256 { get; set; }

    public static StreamPlan Parse(string json) => Parse<StreamPlan>(json, "mad.stream_plan");
}

using System.Text.Json;
using System.Text.Json.Serialization;

namespace ModelAsData.Core.Export;

/// <summary>
/// The manifest written beside an exported training set (<see cref="TrainingSetFiles.Manifest"/>): what was read, with
/// which cutoffs, mix and seed, how many rows each file holds and their sha256, so a next version's metadata can name
/// it (docs/EXPORT.md "Manifest").
/// </summary>
public sealed record TrainingSetManifest
{
    public int ManifestVersion { get; init; } = 1;

    public required string PredictionTable { get; init; }

    /// <summary>The features' table (the prediction table's source), as schema.table.</summary>
    public required string Source { get; init; }

    public required IReadOnlyList<string> KeyColumns { get; init; }

    public required IReadOnlyList<string> FeatureColumns { get; init; }

    public required TrainingSetOutcomes Outcomes { get; init; }

    /// <summary>The versions whose served predictions the exported rows carry, with their row counts (null: no prediction was served before the label).</summary>
    public required IReadOnlyList<TrainingSetVersion> Versions { get; init; }

    public required DateTimeOffset Cutoff { get; init; }

    public DateTimeOffset? NewSince { get; init; }

    public double? Mix { get; init; }

    /// <summary>The --rows asked for (null: as many as the mix allows).</summary>
    public long? Rows { get; init; }

    public double Holdout { get; init; }

    public long Seed { get; init; }

    /// <summary>How rows are split and ordered, in words a reader can reproduce.</summary>
    public required string Split { get; init; }

    /// <summary>The labelled rows there were to choose from, per pool and kind.</summary>
    public required TrainingSetEligible Eligible { get; init; }

    public required IReadOnlyList<TrainingSetFile> Files { get; init; }

    /// <summary>The command that reproduces the files (without --db).</summary>
    public required string Command { get; init; }

    public DateTimeOffset ExportedAt { get; init; }

    /// <summary>
    /// The manifest of an export on either store: what the request asked for, and what was found and written. The
    /// versions' rows, with the rows no prediction was served for as a version of their own (null).
    /// </summary>
    public static TrainingSetManifest Of(TrainingSetRequest request, string predictionTable, string source, IReadOnlyList<string> keyColumns,
        IReadOnlyList<string> featureColumns, TrainingSetOutcomes outcomes, IReadOnlyDictionary<int, long> versions, long unserved, DateTimeOffset cutoff,
        TrainingSetEligible eligible, IReadOnlyList<TrainingSetFile> files) => new()
    {
        PredictionTable = predictionTable,
        Source = source,
        KeyColumns = keyColumns,
        FeatureColumns = featureColumns,
        Outcomes = outcomes,
        Versions = [.. versions.Select(v => new TrainingSetVersion(v.Key, v.Value)), .. unserved > 0 ? [new TrainingSetVersion(null, unserved)] : Array.Empty<TrainingSetVersion>()],
        Cutoff = cutoff,
        NewSince = request.NewSince,
        Mix = request.Mix,
        Rows = request.Rows,
        Holdout = request.Holdout,
        Seed = request.Seed,
        Split = FormattableString.Invariant(
            $"a row is in the holdout when mad.bucket({request.Seed}, key) < {request.Holdout}; each file's rows are taken and written in order of that bucket, then of the key text (byte order)"),
        Eligible = eligible,
        Files = files,
        Command = request.Command(cutoff),
        ExportedAt = DateTimeOffset.UtcNow,
    };

    private static readonly JsonSerializerOptions s_json = new()
    {
        WriteIndented = true,
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        DefaultIgnoreCondition = JsonIgnoreCondition.Never,
    };

    public string ToJson() => JsonSerializer.Serialize(this, s_json);

    public static TrainingSetManifest Parse(string json) =>
        JsonSerializer.Deserialize<TrainingSetManifest>(json, s_json) ?? throw new FormatException("The manifest is empty.");
}

/// <summary>The outcome binding the labels were read through (mad.outcomes).</summary>
public sealed record TrainingSetOutcomes(string Source, IReadOnlyList<string> KeyColumns, string LabelColumn, string ObservedAtColumn);

public sealed record TrainingSetVersion(int? Version, long Rows);

public sealed record TrainingSetEligible(long TrainingNew, long TrainingOld, long HoldoutNew, long HoldoutOld, long LabelsWithoutSourceRow, long RowsWithoutPrediction);

/// <summary>One written file: its part (training or holdout), its name beside the manifest, its rows and sha256 (lower-case hex).</summary>
public sealed record TrainingSetFile(string Part, string File, string Format, long Rows, long NewRows, long OldRows, string Sha256);

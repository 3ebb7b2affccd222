using System.Globalization;

namespace ModelAsData.Core.Export;

/// <summary>
/// What <c>mad export training-set</c> asks for (docs/EXPORT.md): labelled rows of a prediction table's outcome
/// source joined to its features and the predictions served, old and new rows mixed by a share, split into training
/// and holdout by a seeded hash of the key.
/// </summary>
public sealed record TrainingSetRequest
{
    /// <summary>The prediction table whose outcomes are bound (mad.set_outcomes).</summary>
    public required string PredictionTable { get; init; }

    /// <summary>The training file; the holdout and the manifest are written beside it (<see cref="TrainingSetFiles"/>).</summary>
    public required string Out { get; init; }

    public TrainingSetFormat Format { get; init; } = TrainingSetFormat.Csv;

    /// <summary>Labels observed at or after this are "new", the others "old".</summary>
    public DateTimeOffset? NewSince { get; init; }

    /// <summary>The exact share of new rows in each file, in [0, 1]; needs <see cref="NewSince"/>.</summary>
    public double? Mix { get; init; }

    /// <summary>The most rows of both files together.</summary>
    public long? Rows { get; init; }

    /// <summary>The share of rows in the holdout file, in [0, 1); 0 writes no holdout.</summary>
    public double Holdout { get; init; }

    /// <summary>Seeds the hash that splits and orders rows: the same seed gives the same rows in the same order.</summary>
    public long Seed { get; init; } = 1;

    /// <summary>Labels observed after this are left out; default: the moment the export starts (written to the manifest).</summary>
    public DateTimeOffset? Cutoff { get; init; }

    /// <summary>The pseudo table name of a model's online requests, as drift and outcomes spell it: online:&lt;model&gt;.</summary>
    public const string OnlinePrefix = "online:";

    /// <summary>Checks the options against each other before anything is read.</summary>
    public void Validate()
    {
        // A prediction table, or a model's online traffic as 'online:<model>' (PostgreSQL, 051).
        if (PredictionTable is not null && PredictionTable.StartsWith(OnlinePrefix, StringComparison.Ordinal))
        {
            Names.Validate(PredictionTable[OnlinePrefix.Length..], "model");
        }
        else
        {
            Names.Validate(PredictionTable, "prediction table");
        }

        if (string.IsNullOrWhiteSpace(Out))
        {
            throw Invalid("--out names the training file to write, e.g. --out train.csv.");
        }

        if (Mix is { } mix && (double.IsNaN(mix) || mix < 0 || mix > 1))
        {
            throw Invalid(FormattableString.Invariant($"--mix is the share of new rows, between 0 and 1 (0.5 for half new, half old); got {mix}."));
        }

        if (Mix is not null && NewSince is null)
        {
            throw Invalid("--mix needs --new-since: rows whose outcome was observed at or after it are the new ones, e.g. --new-since 2026-11-01 --mix 0.5.");
        }

        if (double.IsNaN(Holdout) || Holdout < 0 || Holdout >= 1)
        {
            throw Invalid(FormattableString.Invariant($"--holdout is the share of rows kept out of training, at least 0 and below 1 (e.g. 0.2); got {Holdout}."));
        }

        if (Rows is <= 0)
        {
            throw Invalid(string.Create(CultureInfo.InvariantCulture, $"--rows caps the rows exported and must be positive; got {Rows}."));
        }

        if (NewSince is { } since && Cutoff is { } cutoff && cutoff < since)
        {
            throw Invalid($"--cutoff {cutoff.UtcDateTime:O} is before --new-since {since.UtcDateTime:O}: no label could be new. Give a cutoff at or after --new-since.");
        }
    }

    /// <summary>The <c>mad</c> command that reproduces this export with its cutoff fixed (no --db: connection strings can hold passwords).</summary>
    public string Command(DateTimeOffset cutoff)
    {
        var c = CultureInfo.InvariantCulture;
        var text = new System.Text.StringBuilder(string.Create(c, $"mad export training-set {PredictionTable} --out {Quoted(Out)} --format {Format.ToString().ToLowerInvariant()}"));
        if (NewSince is { } since)
        {
            text.Append(c, $" --new-since {since.UtcDateTime:yyyy-MM-ddTHH:mm:ss.fffffffZ}");
        }

        if (Mix is { } mix)
        {
            text.Append(c, $" --mix {mix:R}");
        }

        if (Rows is { } rows)
        {
            text.Append(c, $" --rows {rows}");
        }

        text.Append(c, $" --holdout {Holdout:R} --seed {Seed} --cutoff {cutoff.UtcDateTime:yyyy-MM-ddTHH:mm:ss.fffffffZ}");
        return text.ToString();
    }

    private static string Quoted(string path) => path.Any(ch => char.IsWhiteSpace(ch) || ch is '\'' or '"' or '$' or '`' or '\\')
        ? "'" + path.Replace("'", "'\\''", StringComparison.Ordinal) + "'"
        : path;

    private static ModelAsDataException Invalid(string message) => new(ErrorCode.InvalidArgument, message);
}

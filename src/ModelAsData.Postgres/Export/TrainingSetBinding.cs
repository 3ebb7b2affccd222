namespace ModelAsData.Postgres.Export;

/// <summary>What an export reads: the prediction table's source, key and mapped feature columns, and its outcome binding.</summary>
internal sealed record TrainingSetBinding(
    string Name,
    string Source,
    IReadOnlyList<string> KeyColumns,
    IReadOnlyList<string> FeatureColumns,
    string OutcomeSource,
    IReadOnlyList<string> OutcomeKeyColumns,
    string LabelColumn,
    string ObservedAtColumn)
{
    /// <summary>The exported label and observed-at columns: their names in the outcome source, prefixed outcome_ if a key or feature has that name.</summary>
    public string LabelOut => Unclashed(LabelColumn);

    public string ObservedAtOut => Unclashed(ObservedAtColumn);

    /// <summary>Every exported column, in file order: key, features, label, observed at, then what was served, and by which device (empty: centrally).</summary>
    public IReadOnlyList<string> Columns =>
        [.. KeyColumns, .. FeatureColumns, LabelOut, ObservedAtOut, "served_version", "served_arm", "served_outputs", "served_at", "served_device"];

    private string Unclashed(string column) =>
        KeyColumns.Contains(column, StringComparer.Ordinal) || FeatureColumns.Contains(column, StringComparer.Ordinal) || column.StartsWith("served_", StringComparison.Ordinal)
            ? "outcome_" + column
            : column;
}

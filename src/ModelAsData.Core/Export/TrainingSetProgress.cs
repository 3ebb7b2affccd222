namespace ModelAsData.Core.Export;

/// <summary>An export's progress: rows written so far to one file of <paramref name="Total"/> planned.</summary>
public readonly record struct TrainingSetProgress(string Part, long Rows, long Total);

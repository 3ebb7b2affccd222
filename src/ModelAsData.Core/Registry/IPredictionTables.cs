namespace ModelAsData.Core.Registry;

/// <summary>
/// Prediction tables of one store: a model reference bound to a source table, scored into a typed output table that
/// analysts join. Every output row records the version that made it, when, and a per-row error where scoring failed.
/// </summary>
public interface IPredictionTables
{
    /// <summary>Binds and creates the output table; fails with a clear message when an input has no column or a name is invalid.</summary>
    Task<PredictionTable> CreateAsync(PredictionTableSpec spec, CancellationToken cancellationToken = default);

    /// <summary>Scores every source row with the version the reference means now, replacing the previous predictions.</summary>
    Task<RefreshResult> RefreshAsync(string name, IProgress<RefreshProgress>? progress = null, CancellationToken cancellationToken = default);

    Task<PredictionTable> GetAsync(string name, CancellationToken cancellationToken = default);

    Task<IReadOnlyList<PredictionTable>> ListAsync(CancellationToken cancellationToken = default);
}

namespace ModelAsData.Core.Registry;

/// <summary>A model as <c>mad models list</c> shows it.</summary>
/// <param name="Versions">How many versions it has, in any status.</param>
/// <param name="LatestReady">Its newest ready version, if any.</param>
/// <param name="Aliases">Each alias and the version it points at.</param>
public sealed record ModelSummary(string Model, int Versions, int? LatestReady, IReadOnlyDictionary<string, int> Aliases, DateTimeOffset UpdatedAt);

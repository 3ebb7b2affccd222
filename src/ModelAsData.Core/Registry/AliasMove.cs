namespace ModelAsData.Core.Registry;

/// <summary>One move of an alias, as kept in its history: who moved it, when, from where to where and why.</summary>
/// <param name="From">The version it pointed at before, or null when it was created.</param>
public sealed record AliasMove(string Model, string Alias, int? From, int To, string MovedBy, DateTimeOffset MovedAt, string? Reason);

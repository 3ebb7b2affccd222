namespace ModelAsData.IntegrationTests.Contract;

/// <summary>Reference resolution on SQLite (<see cref="ResolutionContractTests"/>).</summary>
public sealed class SqliteResolutionContractTests() : ResolutionContractTests(new SqliteRulesStore());

/// <summary>Feature mapping on SQLite (<see cref="FeatureMappingContractTests"/>).</summary>
public sealed class SqliteFeatureMappingContractTests() : FeatureMappingContractTests(new SqliteRulesStore());

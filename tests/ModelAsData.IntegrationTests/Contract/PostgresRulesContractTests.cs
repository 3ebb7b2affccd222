namespace ModelAsData.IntegrationTests.Contract;

/// <summary>Reference resolution on PostgreSQL (<see cref="ResolutionContractTests"/>).</summary>
public sealed class PostgresResolutionContractTests(PostgresDatabase database)
    : ResolutionContractTests(new PostgresRulesStore(database)), IClassFixture<PostgresDatabase>;

/// <summary>Feature mapping on PostgreSQL (<see cref="FeatureMappingContractTests"/>).</summary>
public sealed class PostgresFeatureMappingContractTests(PostgresDatabase database)
    : FeatureMappingContractTests(new PostgresRulesStore(database)), IClassFixture<PostgresDatabase>;

namespace ModelAsData.IntegrationTests.Infrastructure;

/// <summary>A <see cref="DatabaseTests"/> class whose tests push and read models through the PostgreSQL registry.</summary>
public abstract class RegistryTests(PostgresDatabase database) : DatabaseTests(database)
{
    protected PostgresModelRegistry Registry { get; } = new(database.DataSource);
}

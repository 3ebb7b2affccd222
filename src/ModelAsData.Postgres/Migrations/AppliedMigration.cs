namespace ModelAsData.Postgres.Migrations;

/// <summary>A row of <c>mad.schema_migrations</c>.</summary>
internal sealed class AppliedMigration
{
    public string Name { get; set; } = "";

    public string Checksum { get; set; } = "";
}

using System.Text.Json.Nodes;
using ModelAsData.Sidecar.Validation;
using ModelAsData.Sidecar;

namespace ModelAsData.IntegrationTests.Contract;

/// <summary>The registry contract on PostgreSQL: versions are made ready by the sidecar's validator, called directly.</summary>
public sealed class PostgresRegistryContractTests(PostgresDatabase database) : RegistryContractTests, IClassFixture<PostgresDatabase>
{
    protected override string ExpectedKind => "postgres";

    protected override Task<IModelRegistry> OpenRegistryAsync() => Task.FromResult<IModelRegistry>(new PostgresModelRegistry(database.DataSource));

    protected override Task<string> MigrationStateAsync() => database.DataSource.ScalarAsync<string>("""
        SELECT (SELECT string_agg(format('%s %s %s', m.name, m.checksum, m.applied_at), E'\n' ORDER BY m.name) FROM mad.schema_migrations m)
          || E'\n' || (SELECT string_agg(format('%s %s', n.nspname, n.nspacl), E'\n' ORDER BY n.nspname) FROM pg_namespace n WHERE n.nspname LIKE 'mad%')
          || E'\n' || (SELECT string_agg(format('%s %s', c.oid::regclass, c.relacl), E'\n' ORDER BY c.oid::regclass::text)
                        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname IN ('mad', 'mad_outbox') AND c.relkind IN ('r', 'v'))
          || E'\n' || (SELECT string_agg(format('%s %s', p.oid::regprocedure, p.proacl), E'\n' ORDER BY p.oid::regprocedure::text)
                        FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = 'mad')
        """);

    protected override async Task<ModelVersion> PushReadyAsync(string model, byte[] onnx, JsonObject? metadata = null)
    {
        var pushed = await Registry.PushAsync(model, onnx, metadata ?? [], Ct);
        Assert.Equal(VersionStatus.Pending, pushed.Status);
        await new PendingVersionValidator(database.DataSource, new SidecarOptions { SidecarId = "contract-tests" }).ValidatePendingAsync(Ct);
        return await Registry.ResolveAsync(new(model, null, pushed.Version), Ct);
    }
}

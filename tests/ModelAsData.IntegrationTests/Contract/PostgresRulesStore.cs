using System.Text.Json.Nodes;
using ModelAsData.Postgres.Jobs;
using ModelAsData.Sidecar;
using ModelAsData.Sidecar.Validation;

namespace ModelAsData.IntegrationTests.Contract;

/// <summary>
/// The rule suites' store on PostgreSQL: the test class's own database (tests of one class run one at a time), its
/// registry emptied before each test. Versions are made ready by the sidecar's validator, called directly.
/// </summary>
public sealed class PostgresRulesStore(PostgresDatabase database) : RulesStore
{
    /// <summary>The source tables the suites create; dropped before each test.</summary>
    public static readonly IReadOnlyList<string> SourceTables = ["flowers", "passengers"];

    public override async Task OpenEmptyAsync()
    {
        await database.DataSource.ExecuteAsync(
            $"TRUNCATE mad.models, mad.prediction_tables CASCADE; DROP TABLE IF EXISTS {string.Join(", ", SourceTables)} CASCADE");
        var registry = new PostgresModelRegistry(database.DataSource);
        Registry = registry;
        Tables = new PostgresPredictionTables(registry);
    }

    public override async Task<ModelVersion> PushReadyAsync(string model, byte[] onnx, JsonObject? metadata = null)
    {
        var pushed = await Registry.PushAsync(model, onnx, metadata ?? [], Ct);
        await new PendingVersionValidator(database.DataSource, new SidecarOptions { SidecarId = "rules-contract-tests" }).ValidatePendingAsync(Ct);
        return await Registry.ResolveAsync(new(model, null, pushed.Version), Ct);
    }

    public override async Task<int> PushPendingAsync(string model, byte[] onnx) => (await Registry.PushAsync(model, onnx, [], Ct)).Version;

    public override Task RejectAsync(string model, int version, string reason) =>
        database.DataSource.ExecuteAsync("UPDATE mad.model_versions SET status = 'rejected', reason = @reason, signature = NULL WHERE model = @model AND version = @version",
            new { model, version, reason });

    public override string Relation(string table) => "public." + table;

    public override Task ExecuteAsync(string sql) => database.DataSource.ExecuteAsync(sql);

    public override ValueTask DisposeAsync() => Registry?.DisposeAsync() ?? ValueTask.CompletedTask;
}

using System.Text.Json.Nodes;
using Dapper;
using Microsoft.Data.Sqlite;
using ModelAsData.Sqlite;

namespace ModelAsData.IntegrationTests.Contract;

/// <summary>The rule suites' store on SQLite: a fresh file per test. Pushes are validated in-process, so a pending or rejected version is made by hand.</summary>
public sealed class SqliteRulesStore : RulesStore
{
    private readonly string _path = Path.Combine(Path.GetTempPath(), $"mad-rules-{Guid.NewGuid():N}.db");
    private SqliteModelRegistry? _registry;

    public override async Task OpenEmptyAsync()
    {
        _registry = await SqliteModelRegistry.OpenAsync(_path, Ct);
        Registry = _registry;
        Tables = new SqlitePredictionTables(_registry);
    }

    public override Task<ModelVersion> PushReadyAsync(string model, byte[] onnx, JsonObject? metadata = null) => Registry.PushAsync(model, onnx, metadata ?? [], Ct);

    public override async Task<int> PushPendingAsync(string model, byte[] onnx)
    {
        var pushed = await Registry.PushAsync(model, onnx, [], Ct);
        await _registry!.Connection.ExecuteAsync(
            "UPDATE mad_model_versions SET status = 'pending', signature = NULL, validated_by = NULL, validated_at = NULL WHERE model = @model AND version = @version",
            new { model, version = pushed.Version });
        return pushed.Version;
    }

    public override Task RejectAsync(string model, int version, string reason) =>
        _registry!.Connection.ExecuteAsync("UPDATE mad_model_versions SET status = 'rejected', reason = @reason, signature = NULL WHERE model = @model AND version = @version",
            new { model, version, reason });

    public override string Relation(string table) => table;

    public override Task ExecuteAsync(string sql) => _registry!.Connection.ExecuteAsync(sql);

    public override async ValueTask DisposeAsync()
    {
        if (_registry is not null)
        {
            await _registry.DisposeAsync();
        }

        SqliteConnection.ClearAllPools();
        foreach (var file in new[] { _path, _path + "-wal", _path + "-shm" })
        {
            File.Delete(file);
        }
    }
}

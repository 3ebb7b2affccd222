using System.Text.Json.Nodes;
using Microsoft.Data.Sqlite;
using ModelAsData.Sqlite;

namespace ModelAsData.IntegrationTests.Contract;

/// <summary>The registry contract on SQLite: a fresh file per test; pushes are validated in-process and come back ready.</summary>
public sealed class SqliteRegistryContractTests : RegistryContractTests
{
    private readonly string _path = Path.Combine(Path.GetTempPath(), $"mad-contract-{Guid.NewGuid():N}.db");

    protected override string ExpectedKind => "sqlite";

    protected override async Task<IModelRegistry> OpenRegistryAsync() => await SqliteModelRegistry.OpenAsync(_path, Ct);

    protected override async Task<string> MigrationStateAsync()
    {
        await using var connection = new SqliteConnection($"Data Source={_path}");
        await connection.OpenAsync(Ct);
        await using var command = new SqliteCommand(
            "SELECT group_concat(name || ' ' || checksum || ' ' || applied_at, char(10)) FROM (SELECT * FROM mad_schema_migrations ORDER BY name)", connection);
        return (string)(await command.ExecuteScalarAsync(Ct))!;
    }

    protected override Task<ModelVersion> PushReadyAsync(string model, byte[] onnx, JsonObject? metadata = null) =>
        Registry.PushAsync(model, onnx, metadata ?? [], Ct);

    protected override ValueTask CleanUpAsync()
    {
        SqliteConnection.ClearAllPools();
        foreach (var file in new[] { _path, _path + "-wal", _path + "-shm" })
        {
            File.Delete(file);
        }

        return ValueTask.CompletedTask;
    }
}

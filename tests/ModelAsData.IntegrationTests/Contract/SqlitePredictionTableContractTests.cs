using System.Globalization;
using System.Text.Json.Nodes;
using Dapper;
using Microsoft.Data.Sqlite;
using ModelAsData.Sqlite;

namespace ModelAsData.IntegrationTests.Contract;

/// <summary>The prediction-table contract on SQLite: a fresh file per test, scored in-process; outputs are <c>mad_out_&lt;name&gt;</c>.</summary>
public sealed class SqlitePredictionTableContractTests : PredictionTableContractTests
{
    private readonly string _path = Path.Combine(Path.GetTempPath(), $"mad-tables-contract-{Guid.NewGuid():N}.db");
    private SqliteModelRegistry? _registry;

    private SqliteConnection Connection => _registry?.Connection ?? throw new InvalidOperationException("OpenAsync has not run.");

    protected override async Task<(IModelRegistry Registry, IPredictionTables Tables)> OpenAsync()
    {
        _registry = await SqliteModelRegistry.OpenAsync(_path, Ct);
        return (_registry, new SqlitePredictionTables(_registry));
    }

    protected override Task<ModelVersion> PushReadyAsync(string model, byte[] onnx, JsonObject? metadata = null) =>
        Registry.PushAsync(model, onnx, metadata ?? [], Ct);

    protected override string OutputTableOf(string name) => SqlitePredictionTables.OutputTableOf(name);

    protected override string NumbersAndAWordColumnType => "real";

    /// <summary>SQLite has no arrays: a tensor is JSON text (or a BLOB of bytes, which cannot hold 300 or a null).</summary>
    protected override string TensorColumnType => "TEXT";

    protected override string TensorLiteral(int?[][] rows, bool flat = false) =>
        flat
            ? $"'[{Values(rows.Select(r => r[0]))}]'"
            : $"'[{string.Join(", ", rows.Select(r => $"[{Values(r)}]"))}]'";

    private static string Values(IEnumerable<int?> values) => string.Join(", ", values.Select(v => v?.ToString(CultureInfo.InvariantCulture) ?? "null"));

    protected override string ColumnsQuery(string name) => $"SELECT name FROM pragma_table_info('{OutputTableOf(name)}') ORDER BY cid";

    protected override Task ExecuteAsync(string sql) => Connection.ExecuteAsync(new CommandDefinition(sql, cancellationToken: Ct));

    protected override async Task<IReadOnlyList<T>> QueryAsync<T>(string sql) =>
        (await Connection.QueryAsync<T>(new CommandDefinition(sql, cancellationToken: Ct))).ToList();

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

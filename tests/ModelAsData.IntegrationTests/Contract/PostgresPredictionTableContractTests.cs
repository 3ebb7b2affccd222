using System.Globalization;
using System.Text.Json.Nodes;
using ModelAsData.Postgres.Jobs;

namespace ModelAsData.IntegrationTests.Contract;

/// <summary>
/// The prediction-table contract on PostgreSQL: a sidecar runs in-process for each test (refreshes are jobs that
/// sidecars carry out, validation too); outputs are <c>mad_out.&lt;name&gt;</c>. Source tables go to <c>public</c>.
/// </summary>
public sealed class PostgresPredictionTableContractTests(PostgresDatabase database) : PredictionTableContractTests, IClassFixture<PostgresDatabase>
{
    private RunningSidecar? _sidecar;

    protected override async Task<(IModelRegistry Registry, IPredictionTables Tables)> OpenAsync()
    {
        _sidecar = await RunningSidecar.StartAsync(database.ConnectionString);
        var registry = new PostgresModelRegistry(database.DataSource);
        return (registry, new PostgresPredictionTables(registry, TimeSpan.FromMilliseconds(50)));
    }

    protected override async Task<ModelVersion> PushReadyAsync(string model, byte[] onnx, JsonObject? metadata = null)
    {
        var pushed = await Registry.PushAsync(model, onnx, metadata ?? [], Ct);
        return await Registry.WaitForValidationAsync(model, pushed.Version, TimeSpan.FromSeconds(30), Ct);
    }

    protected override string OutputTableOf(string name) => "mad_out." + name;

    protected override string NumbersAndAWordColumnType => "text";

    protected override string TensorColumnType => "smallint[]";

    protected override string TensorLiteral(int?[][] rows, bool flat = false) =>
        flat
            ? $"'{{{Values(rows.Select(r => r[0]))}}}'"
            : $"'{{{string.Join(", ", rows.Select(r => $"{{{Values(r)}}}"))}}}'";

    private static string Values(IEnumerable<int?> values) => string.Join(", ", values.Select(v => v?.ToString(CultureInfo.InvariantCulture) ?? "NULL"));

    protected override string ColumnsQuery(string name) =>
        $"SELECT attname::text FROM pg_attribute WHERE attrelid = '{OutputTableOf(name)}'::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum";

    protected override Task ExecuteAsync(string sql) => database.DataSource.ExecuteAsync(sql);

    protected override Task<IReadOnlyList<T>> QueryAsync<T>(string sql) => database.DataSource.QueryAsync<T>(sql);

    protected override async ValueTask CleanUpAsync()
    {
        if (_sidecar is not null)
        {
            await _sidecar.DisposeAsync();
        }
    }
}

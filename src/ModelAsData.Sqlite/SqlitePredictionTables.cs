using System.Text.Json;
using System.Text.Json.Nodes;
using Dapper;
using Microsoft.Data.Sqlite;
using ModelAsData.Core;
using ModelAsData.Core.Onnx;
using ModelAsData.Core.Registry;

namespace ModelAsData.Sqlite;

/// <summary>
/// Prediction tables in the SQLite file: the output of <c>churn_scores</c> is <c>mad_out_churn_scores</c>, holding the
/// source's key columns, one column per decoded output, <c>model_version</c>, <c>scored_at</c> and <c>error</c>.
/// Use from one thread at a time.
/// </summary>
public sealed partial class SqlitePredictionTables : IPredictionTables
{
    /// <summary>Columns every output table has after the decoded outputs.</summary>
    public static readonly IReadOnlyList<string> TrailingColumns = ["model_version", "scored_at", "error", "arm"];

    private readonly SqliteModelRegistry _registry;
    private readonly ModelCache _cache;

    public SqlitePredictionTables(SqliteModelRegistry registry, ModelCache? cache = null)
    {
        _registry = registry;
        _cache = cache ?? ModelCache.Shared;
    }

    private SqliteConnection Connection => _registry.Connection;

    public static string OutputTableOf(string name) => "mad_out_" + name;

    /// <summary>Whether the output table has its arm column: tables created before migration 004 get it on their next refresh.</summary>
    internal static async Task<bool> HasArmAsync(Microsoft.Data.Sqlite.SqliteConnection connection, string name, CancellationToken cancellationToken) =>
        await connection.ExecuteScalarAsync<long>(new CommandDefinition(
            "SELECT count(*) FROM pragma_table_info(@table) WHERE name = 'arm'", new { table = OutputTableOf(name) }, cancellationToken: cancellationToken)) > 0;

    public async Task<PredictionTable> CreateAsync(PredictionTableSpec spec, CancellationToken cancellationToken = default)
    {
        Names.Validate(spec.Name, "prediction table");
        var reference = ModelReference.Parse(spec.Model);
        var source = await TableNameAsync(spec.Source, cancellationToken)
            ?? throw new ModelAsDataException(ErrorCode.NotFound, $"No table or view '{spec.Source}' in {Connection.DataSource}.");
        var sourceColumns = await SourceColumnsAsync(source, cancellationToken);
        if (spec.Key.Count == 0)
        {
            throw new ModelAsDataException(ErrorCode.InvalidArgument, $"Give the key column(s) that identify a row of {spec.Source}, e.g. --key id.");
        }

        var key = spec.Key.Select(k => Column(sourceColumns, k, spec.Source)).ToList();
        var version = await _registry.ResolveAsync(reference, cancellationToken);
        var signature = version.Status == VersionStatus.Ready && version.Signature is { } ready ? ready : throw SqliteRegistryMessages.NotReadyToScore(version);
        var mapping = FeatureMapping.Resolve(signature, reference.Model, spec.Features ?? version.Metadata["features"] as JsonObject, source, sourceColumns.Select(c => c.Name).ToList());
        if (await TableNameAsync(OutputTableOf(spec.Name), cancellationToken) is not null || await FindAsync(spec.Name, cancellationToken) is not null)
        {
            throw new ModelAsDataException(ErrorCode.Conflict, $"Prediction table '{spec.Name}' already exists; refresh it with: mad tables refresh {spec.Name}");
        }

        var columns = OutputColumns(signature.Columns, key.Select(k => k.Name));
        using var transaction = Connection.BeginTransaction(deferred: false);
        await Connection.ExecuteAsync(new CommandDefinition(CreateOutputSql(spec.Name, key, columns), transaction: transaction, cancellationToken: cancellationToken));
        await Connection.ExecuteAsync(new CommandDefinition(SqliteTableSql.Insert, new
        {
            name = spec.Name,
            source,
            keyColumns = JsonSerializer.Serialize(key.Select(k => k.Name)),
            keyTypes = JsonSerializer.Serialize(key.Select(k => k.Type)),
            model = reference.ToString(),
            features = mapping.Json.ToJsonString(),
            featureColumns = JsonSerializer.Serialize(mapping.SlotColumns),
            columns = JsonSerializer.Serialize(columns, ModelSignature.JsonOptions),
            by = Environment.UserName,
            at = SqliteTime.Now(),
        }, transaction, cancellationToken: cancellationToken));
        transaction.Commit();
        return await GetAsync(spec.Name, cancellationToken);
    }

    public async Task<PredictionTable> GetAsync(string name, CancellationToken cancellationToken = default) =>
        await FindAsync(name, cancellationToken) ?? throw await NotFoundAsync(name, cancellationToken);

    public async Task<IReadOnlyList<PredictionTable>> ListAsync(CancellationToken cancellationToken = default) =>
        (await Connection.QueryAsync<TableRow>(new CommandDefinition(SqliteTableSql.List, cancellationToken: cancellationToken))).Select(r => r.ToTable()).ToList();

    private async Task<PredictionTable?> FindAsync(string name, CancellationToken cancellationToken) =>
        (await Connection.QuerySingleOrDefaultAsync<TableRow>(new CommandDefinition(SqliteTableSql.Get, new { name }, cancellationToken: cancellationToken)))?.ToTable();

    private async Task<ModelAsDataException> NotFoundAsync(string name, CancellationToken cancellationToken)
    {
        var known = (await ListAsync(cancellationToken)).Select(t => t.Name).ToList();
        return new ModelAsDataException(ErrorCode.NotFound,
            $"No prediction table '{name}' ({(known.Count == 0 ? "there are none" : "tables: " + string.Join(", ", known))}). Create one with: mad tables create {name} --model MODEL --source TABLE --key COLUMN");
    }

    /// <summary>The decoded columns, renamed where one would clash with a key column or a trailing column.</summary>
    private static List<OutputColumn> OutputColumns(IReadOnlyList<OutputColumn> decoded, IEnumerable<string> key)
    {
        var taken = new HashSet<string>(key.Concat(TrailingColumns), StringComparer.OrdinalIgnoreCase);
        return decoded.Select(c => taken.Contains(c.Name) ? c with { Name = "predicted_" + c.Name } : c).ToList();
    }

    private static string CreateOutputSql(string name, List<SourceColumn> key, List<OutputColumn> columns)
    {
        var definitions = key.Select(k => $"{SqliteDatabase.Quote(k.Name)} {Affinity(k.Type)}")
            .Concat(columns.Select(c => $"{SqliteDatabase.Quote(c.Name)} {SqlType(c.Type)}"))
            .Concat(["model_version INTEGER NOT NULL", "scored_at TEXT NOT NULL", "error TEXT",
                     "arm TEXT NOT NULL DEFAULT 'champion' CHECK (arm IN ('champion', 'canary'))"]); // the deployment's arm (004)
        var primaryKey = string.Join(", ", key.Select(k => SqliteDatabase.Quote(k.Name)));
        return $"CREATE TABLE {SqliteDatabase.Quote(OutputTableOf(name))} ({string.Join(", ", definitions)}, PRIMARY KEY ({primaryKey}))";
    }

    /// <summary>
    /// The affinity of a source column's declared type, by SQLite's rules (datatype3.html, 3.1). The declared type is
    /// text from the source table's DDL, which may hold anything, so it never reaches SQL itself.
    /// </summary>
    private static string Affinity(string declared)
    {
        var type = declared.ToUpperInvariant();
        return type switch
        {
            _ when type.Contains("INT", StringComparison.Ordinal) => "INTEGER",
            _ when type.Contains("CHAR", StringComparison.Ordinal) || type.Contains("CLOB", StringComparison.Ordinal) || type.Contains("TEXT", StringComparison.Ordinal) => "TEXT",
            _ when type.Length == 0 || type.Contains("BLOB", StringComparison.Ordinal) => "BLOB",
            _ when type.Contains("REAL", StringComparison.Ordinal) || type.Contains("FLOA", StringComparison.Ordinal) || type.Contains("DOUB", StringComparison.Ordinal) => "REAL",
            _ => "NUMERIC",
        };
    }

    private static string SqlType(ColumnType type) => type switch
    {
        ColumnType.Integer => "INTEGER",
        ColumnType.Real => "REAL",
        _ => "TEXT", // Labels, uint64 as its digits, and arrays as JSON text.
    };

    private async Task<List<SourceColumn>> SourceColumnsAsync(string source, CancellationToken cancellationToken)
    {
        if (await TableNameAsync(source, cancellationToken) is null)
        {
            throw new ModelAsDataException(ErrorCode.NotFound, $"No table or view '{source}' in {Connection.DataSource}: it was dropped or renamed after the prediction table was created.");
        }

        return (await Connection.QueryAsync<SourceColumn>(new CommandDefinition(SqliteTableSql.TableColumns, new { table = source }, cancellationToken: cancellationToken))).ToList();
    }

    private Task<string?> TableNameAsync(string table, CancellationToken cancellationToken) =>
        Connection.QueryFirstOrDefaultAsync<string?>(new CommandDefinition(SqliteTableSql.TableName, new { table }, cancellationToken: cancellationToken));

    private static SourceColumn Column(List<SourceColumn> columns, string name, string source) =>
        columns.FirstOrDefault(c => string.Equals(c.Name, name, StringComparison.OrdinalIgnoreCase))
        ?? throw new ModelAsDataException(ErrorCode.NotFound, $"Table '{source}' has no column '{name}'; its columns: {string.Join(", ", columns.Select(c => c.Name))}.");

    private sealed record SourceColumn(string Name, string Type);

    private sealed record TableRow(string Name, string Source, string KeyColumns, string Model, string Features, string Columns,
        string? RefreshedAt, long? RefreshedVersion, long? RowsScored, long? RowsFailed)
    {
        public PredictionTable ToTable() => new(
            Name,
            Source,
            JsonSerializer.Deserialize<List<string>>(KeyColumns)!,
            Model,
            (JsonObject)JsonNode.Parse(Features)!,
            JsonSerializer.Deserialize<List<OutputColumn>>(Columns, ModelSignature.JsonOptions)!,
            OutputTableOf(Name),
            RefreshedAt is null ? null : SqliteTime.Parse(RefreshedAt),
            (int?)RefreshedVersion,
            RowsScored,
            RowsFailed);
    }
}

using System.Text.Json;
using Dapper;
using Microsoft.Data.Sqlite;
using ModelAsData.Core;
using ModelAsData.Core.Deployments;
using ModelAsData.Core.Onnx;
using ModelAsData.Core.Registry;

namespace ModelAsData.Sqlite;

/// <summary>
/// Legacy replacement on SQLite (sql/sqlite/019_legacy_comparison.sql), by the rules and words of PostgreSQL's
/// mad.set_legacy_column and mad.legacy_agreement (sql/postgres/025_3_legacy_comparison.sql): a label output (text,
/// integer) is compared as text and counted as the share equal, a value output (real) as the mean absolute difference,
/// per arm and version, over rows scored without error whose legacy value is not NULL; the shadow's rows too.
/// Identifiers reach SQL only after a catalog check, through <see cref="SqliteDatabase.Quote"/>.
/// </summary>
internal static class SqliteLegacyComparison
{
    private const string Read = "SELECT legacy_column, legacy_output FROM mad_prediction_tables WHERE name = @name";

    private const string Write = "UPDATE mad_prediction_tables SET legacy_column = @column, legacy_output = @output WHERE name = @name";

    private static readonly ColumnType[] s_comparable = [ColumnType.Text, ColumnType.Integer, ColumnType.Real];

    public static async Task<LegacyColumn> GetAsync(SqliteConnection connection, PredictionTable table, CancellationToken cancellationToken)
    {
        var (column, output) = await connection.QuerySingleAsync<(string?, string?)>(new CommandDefinition(Read, new { name = table.Name }, cancellationToken: cancellationToken));
        return new LegacyColumn(table.Name, column, output);
    }

    /// <summary>Names (or, with a null column, forgets) the legacy column; errors name the source's columns or the outputs.</summary>
    public static async Task<LegacyColumn> SetAsync(SqliteConnection connection, PredictionTable table, string? column, string? output, CancellationToken cancellationToken)
    {
        if (column is null)
        {
            await connection.ExecuteAsync(new CommandDefinition(Write, new { name = table.Name, column = (string?)null, output = (string?)null }, cancellationToken: cancellationToken));
            return new LegacyColumn(table.Name, null, null);
        }

        var legacy = await SourceColumnAsync(connection, table, column, cancellationToken);
        // A real column holds values, anything else labels (PostgreSQL: real, double precision, numeric are values).
        var kinds = IsValue(legacy.Type) ? new[] { ColumnType.Real } : [ColumnType.Text, ColumnType.Integer];
        var chosen = output is null ? table.Columns.FirstOrDefault(c => kinds.Contains(c.Type)) : table.Columns.FirstOrDefault(c => c.Name == output);
        if (chosen is null || !s_comparable.Contains(chosen.Type))
        {
            throw new ModelAsDataException(ErrorCode.InvalidArgument,
                $"Prediction table '{table.Name}' has no output column {output ?? "of kind " + string.Join(" or ", kinds.Select(TypeName))} to compare with the legacy column {legacy.Name} "
                + $"({(legacy.Type.Length == 0 ? "no declared type" : legacy.Type.ToLowerInvariant())}); its outputs are {string.Join(", ", table.Columns.Select(c => $"{c.Name} ({TypeName(c.Type)})"))}.");
        }

        await connection.ExecuteAsync(new CommandDefinition(Write, new { name = table.Name, column = legacy.Name, output = chosen.Name }, cancellationToken: cancellationToken));
        return new LegacyColumn(table.Name, legacy.Name, chosen.Name);
    }

    /// <summary>Per arm and version, the table's agreement with its legacy column; empty when it names none.</summary>
    public static async Task<IReadOnlyList<LegacyAgreement>> AgreementAsync(SqliteConnection connection, PredictionTable table, CancellationToken cancellationToken)
    {
        var named = await GetAsync(connection, table, cancellationToken);
        if (named.Column is null || named.Output is null)
        {
            return [];
        }

        // The source may have changed since the column was named: say so, and what to do, rather than SQLite's "no such column".
        var legacy = await SourceColumnAsync(connection, table, named.Column, cancellationToken, named: true);
        var output = table.Columns.FirstOrDefault(c => c.Name == named.Output)
            ?? throw new ModelAsDataException(ErrorCode.Conflict,
                $"Prediction table '{table.Name}' no longer has the output column {named.Output} its legacy column {named.Column} was compared with; its outputs are "
                + $"{string.Join(", ", table.Columns.Select(c => c.Name))}. Name the column again: mad tables legacy {table.Name} {named.Column} --output OUTPUT");
        var l = "l." + SqliteDatabase.Quote(legacy.Name);
        string Compared(string row) => output.Type == ColumnType.Real
            ? $"NULL, avg(abs({row}.{SqliteDatabase.Quote(output.Name)} - CAST({l} AS REAL)))"
            : $"avg(CASE WHEN CAST({row}.{SqliteDatabase.Quote(output.Name)} AS TEXT) = CAST({l} AS TEXT) THEN 1.0 ELSE 0.0 END), NULL";
        string Joined(string row) => string.Join(" AND ", table.Key.Select(k => $"l.{SqliteDatabase.Quote(k)} = {row}.{SqliteDatabase.Quote(k)}"));
        var source = SqliteDatabase.Quote(table.Source);
        var arm = await SqlitePredictionTables.HasArmAsync(connection, table.Name, cancellationToken) ? "o.arm" : $"'{Arms.Champion}'"; // before 004's arm: all champion
        var sql = $"SELECT {arm}, o.model_version, count(*), {Compared("o")} FROM {source} l JOIN {SqliteDatabase.Quote(SqlitePredictionTables.OutputTableOf(table.Name))} o "
            + $"ON {Joined("o")} WHERE o.error IS NULL AND {l} IS NOT NULL GROUP BY 1, 2";
        var shadow = SqlitePredictionTables.ShadowTableOf(table.Name);
        if (await connection.ExecuteScalarAsync<long>(new CommandDefinition("SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = @shadow", new { shadow },
                cancellationToken: cancellationToken)) > 0)
        {
            sql += $" UNION ALL SELECT '{Arms.Shadow}', s.shadow_version, count(*), {Compared("s")} FROM {source} l JOIN {SqliteDatabase.Quote(shadow)} s "
                + $"ON {Joined("s")} WHERE s.error IS NULL AND {l} IS NOT NULL GROUP BY 1, 2";
        }

        var rows = await connection.QueryAsync<(string Arm, long Version, long Rows, double? Equal, double? Difference)>(new CommandDefinition(sql, cancellationToken: cancellationToken));
        return rows.Select(r => new LegacyAgreement(r.Arm, (int)r.Version, r.Rows, r.Equal, r.Difference))
            .OrderBy(r => Array.IndexOf([Arms.Champion, Arms.Canary, Arms.Shadow], r.Arm)).ThenBy(r => r.ModelVersion).ToList();
    }

    private static async Task<(string Name, string Type)> SourceColumnAsync(SqliteConnection connection, PredictionTable table, string column, CancellationToken cancellationToken,
        bool named = false)
    {
        var columns = (await connection.QueryAsync<(string Name, string Type)>(new CommandDefinition(SqliteTableSql.TableColumns, new { table = table.Source },
            cancellationToken: cancellationToken))).ToList();
        if (columns.Count == 0)
        {
            throw new ModelAsDataException(ErrorCode.NotFound, $"No table or view '{table.Source}' in {connection.DataSource}: it was dropped or renamed after the prediction table was created.");
        }

        var found = columns.FirstOrDefault(c => string.Equals(c.Name, column, StringComparison.OrdinalIgnoreCase)); // as SQLite matches names
        if (found.Name is null)
        {
            var what = $"Source {table.Source} has no column {column}; its columns are {string.Join(", ", columns.Select(c => c.Name))}.";
            throw named
                ? new ModelAsDataException(ErrorCode.Conflict, $"{what} It was named as the legacy column of '{table.Name}': name another with mad tables legacy {table.Name} COLUMN, or forget it with mad tables legacy {table.Name} --forget.")
                : new ModelAsDataException(ErrorCode.NotFound, what);
        }

        return found;
    }

    /// <summary>A real column by SQLite's affinity rules (REAL, FLOA, DOUB), or a NUMERIC / DECIMAL one, as PostgreSQL's numeric.</summary>
    private static bool IsValue(string declared)
    {
        var type = declared.ToUpperInvariant();
        return !type.Contains("INT", StringComparison.Ordinal)
            && (type.Contains("REAL", StringComparison.Ordinal) || type.Contains("FLOA", StringComparison.Ordinal) || type.Contains("DOUB", StringComparison.Ordinal)
                || type.Contains("NUM", StringComparison.Ordinal) || type.Contains("DEC", StringComparison.Ordinal));
    }

    /// <summary>The word a column's type has in the bindings' JSON (and in PostgreSQL's messages): real, integer, text, real_array, …</summary>
    private static string TypeName(ColumnType type) => JsonNamingPolicy.SnakeCaseLower.ConvertName(type.ToString());
}

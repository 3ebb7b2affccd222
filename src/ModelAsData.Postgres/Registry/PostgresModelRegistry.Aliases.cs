using Dapper;
using ModelAsData.Core.Registry;

namespace ModelAsData.Postgres.Registry;

public sealed partial class PostgresModelRegistry
{
    public Task<IReadOnlyDictionary<string, int>> AliasesAsync(string model, CancellationToken cancellationToken = default) =>
        RunAsync<IReadOnlyDictionary<string, int>>(async connection =>
        {
            await connection.ExecuteAsync(Command(RegistrySql.RequireModel, new { model }, cancellationToken));
            var rows = await connection.QueryAsync<AliasRow>(Command(RegistrySql.Aliases, new { model }, cancellationToken));
            return rows.ToDictionary(r => r.Alias, r => r.Version, StringComparer.Ordinal);
        }, cancellationToken);

    /// <summary>
    /// Moves the alias with <c>mad.set_alias</c> and returns the move, read in the same transaction. When the alias
    /// already points at <paramref name="version"/> nothing moves, and the move that put it there is returned.
    /// </summary>
    public Task<AliasMove> SetAliasAsync(string model, string alias, int version, string? reason = null, CancellationToken cancellationToken = default) =>
        MoveAsync(RegistrySql.SetAlias, new { model, alias, version, reason }, model, alias, cancellationToken);

    public Task<AliasMove> RollbackAliasAsync(string model, string alias, CancellationToken cancellationToken = default) =>
        MoveAsync(RegistrySql.RollbackAlias, new { model, alias }, model, alias, cancellationToken);

    public Task<IReadOnlyList<AliasMove>> AliasHistoryAsync(string model, string alias, CancellationToken cancellationToken = default) =>
        RunAsync<IReadOnlyList<AliasMove>>(async connection =>
        {
            // mad.alias_at validates both names and says what exists when the alias never did.
            await connection.ExecuteScalarAsync<int?>(Command(RegistrySql.AliasAt, new { model, alias, at = DateTime.UtcNow }, cancellationToken));
            var rows = await connection.QueryAsync<MoveRow>(Command(RegistrySql.History, new { model, alias }, cancellationToken));
            return rows.Select(r => r.ToModel()).ToList();
        }, cancellationToken);

    public Task<int?> AliasAtAsync(string model, string alias, DateTimeOffset at, CancellationToken cancellationToken = default) =>
        RunAsync(connection =>
            // Npgsql writes timestamptz only from UTC values.
            connection.ExecuteScalarAsync<int?>(Command(RegistrySql.AliasAt, new { model, alias, at = at.UtcDateTime }, cancellationToken)),
            cancellationToken);

    private Task<AliasMove> MoveAsync(string sql, object parameters, string model, string alias, CancellationToken cancellationToken) =>
        RunAsync(async connection =>
        {
            await using var transaction = await connection.BeginTransactionAsync(cancellationToken);
            await connection.ExecuteScalarAsync<int>(Command(sql, parameters, cancellationToken, transaction));
            var move = await connection.QuerySingleAsync<MoveRow>(Command(RegistrySql.LastMove, new { model, alias }, cancellationToken, transaction));
            await transaction.CommitAsync(cancellationToken);
            return move.ToModel();
        }, cancellationToken);
}

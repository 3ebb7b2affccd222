using Dapper;
using Microsoft.Data.Sqlite;
using ModelAsData.Core;
using ModelAsData.Core.Registry;

namespace ModelAsData.Sqlite;

/// <summary>Alias moves: each one a row change and a history row in one transaction.</summary>
public sealed partial class SqliteModelRegistry
{
    public async Task<AliasMove> SetAliasAsync(string model, string alias, int version, string? reason = null, CancellationToken cancellationToken = default)
    {
        await RequireAliasTargetAsync(model, alias, version, cancellationToken);
        return await MoveAsync(model, alias, version, "set", reason, cancellationToken);
    }

    /// <summary>The checks of <see cref="SetAliasAsync"/>: valid names, and a ready version to point at.</summary>
    internal async Task RequireAliasTargetAsync(string model, string alias, int version, CancellationToken cancellationToken)
    {
        Names.Validate(model, "model");
        Names.Validate(alias, "alias");
        var target = await GetVersionAsync(model, version, cancellationToken);
        if (target.Status != VersionStatus.Ready)
        {
            throw SqliteRegistryMessages.AliasNeedsReady(model, alias, target);
        }
    }

    /// <summary>
    /// The writes of an alias move of kind 'set', in the caller's <paramref name="transaction"/> (a deployment change
    /// moves the alias and records itself in one transaction); the caller ran <see cref="RequireAliasTargetAsync"/>.
    /// </summary>
    internal Task MoveInAsync(string model, string alias, int version, string? reason, SqliteTransaction transaction, CancellationToken cancellationToken) =>
        WriteMoveAsync(model, alias, version, "set", reason, SqliteTime.Now(), transaction, cancellationToken);

    public async Task<AliasMove> RollbackAliasAsync(string model, string alias, CancellationToken cancellationToken = default)
    {
        var last = (await AliasHistoryAsync(model, alias, cancellationToken)).FirstOrDefault();
        if (last is null)
        {
            await EnsureModelExistsAsync(model, cancellationToken);
            throw new ModelAsDataException(ErrorCode.NotFound, $"Model '{model}' has no alias '{alias}' to roll back.");
        }

        if (last.From is not { } previous)
        {
            throw new ModelAsDataException(ErrorCode.Conflict,
                $"{model}@{alias} has pointed only at version {last.To} since it was created: there is no earlier version to roll back to.");
        }

        return await MoveAsync(model, alias, previous, "rollback", $"rollback of the move to version {last.To}", cancellationToken);
    }

    public async Task<IReadOnlyList<AliasMove>> AliasHistoryAsync(string model, string alias, CancellationToken cancellationToken = default)
    {
        var rows = await Connection.QueryAsync<HistoryRow>(Command(SqliteRegistrySql.History, new { model, alias }, null, cancellationToken));
        return rows.Select(r => r.ToAliasMove()).ToList();
    }

    public async Task<int?> AliasAtAsync(string model, string alias, DateTimeOffset at, CancellationToken cancellationToken = default)
    {
        var version = await Connection.ExecuteScalarAsync<long?>(Command(SqliteRegistrySql.AliasAt, new { model, alias, at = SqliteTime.ToText(at) }, null, cancellationToken));
        return (int?)version;
    }

    /// <param name="kind">As in PostgreSQL's mad.alias_history: 'set' or 'rollback'.</param>
    private async Task<AliasMove> MoveAsync(string model, string alias, int version, string kind, string? reason, CancellationToken cancellationToken)
    {
        var now = SqliteTime.Now();
        using var transaction = Connection.BeginTransaction(deferred: false);
        var from = await WriteMoveAsync(model, alias, version, kind, reason, now, transaction, cancellationToken);
        await transaction.CommitAsync(cancellationToken);
        return new AliasMove(model, alias, (int?)from, version, Environment.UserName, SqliteTime.Parse(now), reason);
    }

    /// <summary>The alias row and its history row; returns the version it pointed at before.</summary>
    private async Task<long?> WriteMoveAsync(string model, string alias, int version, string kind, string? reason, string now, SqliteTransaction transaction,
        CancellationToken cancellationToken)
    {
        var from = await Connection.ExecuteScalarAsync<long?>(Command(SqliteRegistrySql.AliasTarget, new { model, alias }, transaction, cancellationToken));
        await Execute(SqliteRegistrySql.UpsertAlias, new { model, alias, version, by = Environment.UserName, at = now }, transaction, cancellationToken);
        await Execute(SqliteRegistrySql.InsertHistory, new { model, alias, from, to = version, kind, by = Environment.UserName, at = now, reason }, transaction, cancellationToken);
        return from;
    }

    private sealed record HistoryRow(string Model, string Alias, long? FromVersion, long ToVersion, string MovedBy, string MovedAt, string? Reason)
    {
        public AliasMove ToAliasMove() => new(Model, Alias, (int?)FromVersion, (int)ToVersion, MovedBy, SqliteTime.Parse(MovedAt), Reason);
    }
}

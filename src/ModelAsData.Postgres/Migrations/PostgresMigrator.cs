using Dapper;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using ModelAsData.Core;
using Npgsql;

namespace ModelAsData.Postgres.Migrations;

/// <summary>
/// Applies the numbered scripts of <c>sql/postgres/</c> that a database has not had yet, in name order, each in its
/// own transaction under an advisory lock, and records each in <c>mad.schema_migrations</c> with its checksum.
/// Idempotent, and safe when several processes migrate one database at once. A script whose text changed after it
/// was applied is refused: migrations are forward-only. Thread-safe; does not own the data source.
/// </summary>
public sealed partial class PostgresMigrator
{
    private readonly NpgsqlDataSource _dataSource;
    private readonly IReadOnlyList<MigrationScript> _scripts;
    private readonly ILogger _logger;
    private readonly TimeSpan _lockTimeout;

    /// <param name="lockTimeout">The longest a script's transaction waits for a lock (the migration lock included); default <see cref="DefaultLockTimeout"/>.</param>
    public PostgresMigrator(NpgsqlDataSource dataSource, ILogger? logger = null, IReadOnlyList<MigrationScript>? scripts = null, TimeSpan? lockTimeout = null)
    {
        _dataSource = dataSource;
        _scripts = scripts ?? MigrationScript.LoadEmbedded();
        _logger = logger ?? NullLogger.Instance;
        _lockTimeout = lockTimeout ?? DefaultLockTimeout;
    }

    /// <summary>How long a script waits for a lock by default: a concurrent migrator's script takes seconds, a session holding it for longer is stuck or hostile.</summary>
    public static TimeSpan DefaultLockTimeout { get; } = TimeSpan.FromSeconds(60);

    /// <summary>The scripts this build knows, in the order they run.</summary>
    public IReadOnlyList<MigrationScript> Scripts => _scripts;

    /// <summary>Applies what is missing; returns the names of the scripts this call applied (empty when up to date).</summary>
    public async Task<IReadOnlyList<string>> MigrateAsync(CancellationToken cancellationToken = default)
    {
        try
        {
            return await ApplyMissingAsync(cancellationToken);
        }
        catch (Exception e) when (PostgresErrors.CanMap(e))
        {
            throw PostgresErrors.Map(e, _dataSource);
        }
    }

    private async Task<IReadOnlyList<string>> ApplyMissingAsync(CancellationToken cancellationToken)
    {
        var applied = new List<string>();
        await using var connection = await _dataSource.OpenConnectionAsync(cancellationToken);
        foreach (var script in _scripts)
        {
            await using var transaction = await connection.BeginTransactionAsync(cancellationToken);
            // Take the lock before reading the journal: a concurrent migrator may be applying this very script.
            await connection.ExecuteAsync(new CommandDefinition(MigrationSql.LockTimeout, new { timeout = $"{(long)_lockTimeout.TotalMilliseconds}ms" }, transaction, cancellationToken: cancellationToken));
            try
            {
                await connection.ExecuteAsync(new CommandDefinition(MigrationSql.Lock, new { key = Protocol.AdvisoryLocks.Migrations }, transaction, cancellationToken: cancellationToken));
            }
            catch (PostgresException e) when (PostgresLockHolders.IsLockTimeout(e))
            {
                await transaction.RollbackAsync(cancellationToken);
                var holders = await PostgresLockHolders.DescribeAsync(connection, Protocol.AdvisoryLocks.Migrations, cancellationToken);
                throw new ModelAsDataException(ErrorCode.Database,
                    $"Waited {_lockTimeout.TotalSeconds:0.#} s for the migration lock (advisory lock {Protocol.AdvisoryLocks.Migrations}, held by {holders}) and gave up; nothing was changed. " +
                    "Another `mad db migrate` holds it while it runs; a session that holds it longer is stuck: end it with SELECT pg_terminate_backend(<pid>), then run `mad db migrate` again.", e);
            }

            await connection.ExecuteAsync(new CommandDefinition(MigrationSql.CreateJournal, transaction: transaction, cancellationToken: cancellationToken));
            var journal = (await connection.QueryAsync<AppliedMigration>(new CommandDefinition(MigrationSql.Applied, transaction: transaction, cancellationToken: cancellationToken)))
                .ToDictionary(m => m.Name, m => m.Checksum, StringComparer.Ordinal);

            if (journal.TryGetValue(script.Name, out var checksum))
            {
                if (!string.Equals(checksum, script.Checksum, StringComparison.Ordinal))
                {
                    throw new ModelAsDataException(ErrorCode.Conflict,
                        $"Migration {script.Name} was applied to this database with checksum {checksum[..12]}…, but this build's copy has {script.Checksum[..12]}…: " +
                        "an applied migration must never change. Restore its original text and put the change in a new numbered script.");
                }

                await transaction.CommitAsync(cancellationToken);
                continue;
            }

            try
            {
                await connection.ExecuteAsync(new CommandDefinition(script.Sql, transaction: transaction, commandTimeout: 0, cancellationToken: cancellationToken));
            }
            catch (PostgresException e) when (PostgresLockHolders.IsLockTimeout(e))
            {
                throw new ModelAsDataException(ErrorCode.Database,
                    $"Migration {script.Name} waited {_lockTimeout.TotalSeconds:0.#} s for a lock on an object it changes and gave up ({e.MessageText}); it was rolled back and the database keeps the migrations before it. " +
                    "A long transaction holds a lock on a mad table (see pg_locks and pg_stat_activity): end it, then run `mad db migrate` again.", e);
            }
            catch (PostgresException e)
            {
                var error = PostgresErrors.Map(e, _dataSource);
                throw new ModelAsDataException(error.Code,
                    $"Migration {script.Name} failed and was rolled back; the database keeps the migrations before it. {error.Message}", e);
            }

            await connection.ExecuteAsync(new CommandDefinition(MigrationSql.Record, new { name = script.Name, checksum = script.Checksum }, transaction, cancellationToken: cancellationToken));
            await transaction.CommitAsync(cancellationToken);
            LogApplied(_logger, script.Name);
            applied.Add(script.Name);
        }

        return applied;
    }

    [LoggerMessage(EventId = Protocol.LogEvents.MigrationApplied, Level = LogLevel.Information, Message = "Applied migration {Migration}")]
    private static partial void LogApplied(ILogger logger, string migration);
}

using ModelAsData.Core.Onnx;
using Npgsql;

namespace ModelAsData.Postgres.Streaming;

/// <summary>
/// Drains watched tables' outboxes over one long-lived connection, keeping each table's plan, scorer and prepared
/// statements (<see cref="StreamedTable"/>) until <see cref="Invalidate"/> says they may have changed (an alias moved,
/// a table was watched, unwatched or refreshed, notifications were missed) or they are a few seconds old. Used by one
/// worker at a time; <see cref="Invalidate"/> may be called from any thread. Does not own the data source or cache.
/// </summary>
/// <param name="scoreBatchSize">Rows per ONNX Runtime call; null: the whole batch in one call where the model allows.</param>
public sealed class StreamDrain(NpgsqlDataSource dataSource, ModelCache cache, int? scoreBatchSize = null) : IAsyncDisposable
{
    private static readonly TimeSpan TablesMaxAge = TimeSpan.FromSeconds(1);

    private readonly Dictionary<string, StreamedTable> _tables = [];
    private NpgsqlConnection? _connection;
    private string[] _watched = [];
    private int _batchRows;
    private int _idleTimeoutMs;
    private long _watchedAt;
    private volatile bool _invalidated = true;

    /// <summary>The most outbox rows one batch claims (setting <c>stream_batch_rows</c>), as of <see cref="WatchedTablesAsync"/>.</summary>
    public int BatchRows => _batchRows;

    /// <summary>Forgets every plan and the list of watched tables; the next call reads them again.</summary>
    public void Invalidate() => _invalidated = true;

    /// <summary>
    /// The watched tables, read again at most every second or after <see cref="Invalidate"/>. Plans are dropped only
    /// after <see cref="Invalidate"/>, for tables no longer watched, or when the batch settings changed: rebuilding them
    /// every second stalled the drain for milliseconds each time, and they expire on their own (<see cref="StreamedTable.MaxAge"/>).
    /// </summary>
    public async Task<IReadOnlyList<string>> WatchedTablesAsync(CancellationToken cancellationToken)
    {
        var connection = await ConnectionAsync(cancellationToken);
        if (_invalidated || System.Diagnostics.Stopwatch.GetElapsedTime(_watchedAt) > TablesMaxAge)
        {
            var invalidated = _invalidated;
            _invalidated = false;
            var (batchRows, idleTimeoutMs) = (_batchRows, _idleTimeoutMs);
            var watched = new List<string>();
            await using (var command = new NpgsqlCommand(StreamSql.Watched, connection))
            await using (var reader = await command.ExecuteReaderAsync(cancellationToken))
            {
                while (await reader.ReadAsync(cancellationToken))
                {
                    watched.Add(reader.GetString(0));
                }
            }

            await using (var command = new NpgsqlCommand(StreamSql.BatchSettings, connection))
            await using (var reader = await command.ExecuteReaderAsync(cancellationToken))
            {
                await reader.ReadAsync(cancellationToken);
                _batchRows = Math.Max(1, reader.GetInt32(0));
                _idleTimeoutMs = Math.Max(1, reader.GetInt32(1));
            }

            _watched = [.. watched];
            _watchedAt = System.Diagnostics.Stopwatch.GetTimestamp();
            if (invalidated || batchRows != _batchRows || idleTimeoutMs != _idleTimeoutMs)
            {
                DropTables();
            }

            foreach (var gone in _tables.Keys.Except(_watched).ToList())
            {
                _tables.Remove(gone, out var table);
                table!.Dispose();
            }
        }

        return _watched;
    }

    /// <summary>
    /// Drains one batch of <paramref name="table"/> (see <see cref="StreamedTable.DrainAsync"/>). On failure the
    /// transaction is rolled back (the keys stay waiting), the table's plan is dropped, and the error is thrown.
    /// </summary>
    public async Task<StreamBatchResult> DrainAsync(string table, CancellationToken cancellationToken)
    {
        if (_batchRows == 0)
        {
            await WatchedTablesAsync(cancellationToken);
        }

        var connection = await ConnectionAsync(cancellationToken);
        try
        {
            if (!_tables.TryGetValue(table, out var streamed) || streamed.IsStale)
            {
                streamed?.Dispose();
                _tables.Remove(table);
                streamed = await StreamedTable.CreateAsync(connection, table, _batchRows, _idleTimeoutMs, scoreBatchSize, cache, cancellationToken);
                _tables[table] = streamed;
            }

            var result = await streamed.DrainAsync(cancellationToken);
            if (result.PlanChanged)
            {
                _tables.Remove(table);
                streamed.Dispose();
            }

            return result;
        }
        catch
        {
            if (_tables.Remove(table, out var failed))
            {
                failed.Dispose();
            }

            await RollBackAsync();
            throw;
        }
    }

    /// <summary>
    /// Asks for writers' capture functions to NOTIFY <c>mad_rows</c> or not (<c>mad.stream_set_notify</c>); returns
    /// whether they do, which stays false while another drain that turned it off polls.
    /// </summary>
    public async Task<bool> SetNotifyAsync(bool notify, CancellationToken cancellationToken)
    {
        await using var command = new NpgsqlCommand(StreamSql.SetNotify, await ConnectionAsync(cancellationToken)) { Parameters = { new() { Value = notify } } };
        return (bool)(await command.ExecuteScalarAsync(cancellationToken))!;
    }

    /// <summary>
    /// Who holds the advisory locks of streamed keys (a batch's claim locks each key it scores), for the warning after
    /// a claim gave up waiting for one (55P03). Call it after the failed batch rolled back.
    /// </summary>
    public async Task<string> KeyLockHoldersAsync(CancellationToken cancellationToken) =>
        await PostgresLockHolders.DescribeAsync(await ConnectionAsync(cancellationToken), null, cancellationToken);

    /// <summary>Reports a table's figures and its last batch error (null: batches succeed) in <c>mad.stream_stats</c>.</summary>
    public async Task ReportAsync(string sidecar, string table, long rows, double rowsPerSecond, string? error, CancellationToken cancellationToken)
    {
        await using var command = new NpgsqlCommand(StreamSql.Report, await ConnectionAsync(cancellationToken))
        {
            Parameters = { new() { Value = sidecar }, new() { Value = table }, new() { Value = rows }, new() { Value = rowsPerSecond }, new() { Value = (object?)error ?? DBNull.Value, NpgsqlDbType = NpgsqlTypes.NpgsqlDbType.Text } },
        };
        await command.ExecuteNonQueryAsync(cancellationToken);
    }

    /// <summary>A table's keys waiting in the outbox and the oldest one's age in seconds.</summary>
    public async Task<(long Waiting, double OldestSeconds)> LagAsync(string table, CancellationToken cancellationToken)
    {
        await using var command = new NpgsqlCommand(StreamSql.Lag, await ConnectionAsync(cancellationToken)) { Parameters = { new() { Value = table } } };
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        await reader.ReadAsync(cancellationToken);
        return (reader.GetInt64(0), reader.GetDouble(1));
    }

    public async ValueTask DisposeAsync()
    {
        DropTables();
        if (_connection is not null)
        {
            await _connection.DisposeAsync();
            _connection = null;
        }
    }

    private async Task<NpgsqlConnection> ConnectionAsync(CancellationToken cancellationToken)
    {
        if (_connection is { State: System.Data.ConnectionState.Open })
        {
            return _connection;
        }

        await DisposeAsync();
        _connection = await dataSource.OpenConnectionAsync(cancellationToken);
        _invalidated = true; // prepared statements belong to the old connection
        return _connection;
    }

    /// <summary>Ends a failed batch's transaction; a connection that cannot is dropped (the server rolls back).</summary>
    private async Task RollBackAsync()
    {
        if (_connection is not { State: System.Data.ConnectionState.Open })
        {
            return;
        }

        try
        {
            await using var rollback = new NpgsqlCommand(StreamSql.Rollback, _connection);
            await rollback.ExecuteNonQueryAsync(CancellationToken.None);
        }
        catch (Exception e) when (e is NpgsqlException or InvalidOperationException)
        {
            await DisposeAsync();
        }
    }

    private void DropTables()
    {
        foreach (var table in _tables.Values)
        {
            table.Dispose();
        }

        _tables.Clear();
    }
}

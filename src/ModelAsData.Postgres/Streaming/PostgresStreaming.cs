using Dapper;
using ModelAsData.Core.Registry;
using ModelAsData.Postgres.Registry;

namespace ModelAsData.Postgres.Streaming;

/// <summary>
/// Streaming in PostgreSQL: <c>mad.watch</c> adds triggers that queue a table's changed keys in its outbox
/// (<c>mad_outbox.&lt;name&gt;</c>), which running sidecars drain; <c>mad.stream_lag</c> reports how far behind they are.
/// Thread-safe; does not own the registry's data source.
/// </summary>
public sealed class PostgresStreaming(PostgresModelRegistry registry) : IStreaming
{
    private const string Lag = """
        SELECT coalesce((SELECT p.watched FROM mad.prediction_tables p WHERE p.name = @name), false) AS Watched,
               l.waiting AS Waiting, extract(epoch FROM l.oldest_age)::double precision AS OldestSeconds,
               l.rows_per_second AS RowsPerSecond, l.error AS Error
        FROM mad.stream_lag(@name) l
        """;

    private const string Lags = """
        SELECT p.name AS Name, true AS Watched, l.waiting AS Waiting, extract(epoch FROM l.oldest_age)::double precision AS OldestSeconds,
               l.rows_per_second AS RowsPerSecond, l.error AS Error
        FROM mad.prediction_tables p CROSS JOIN LATERAL mad.stream_lag(p.name) l
        WHERE p.watched ORDER BY p.name
        """;

    public bool IsSupported => true;

    public Task WatchAsync(string name, CancellationToken cancellationToken = default) =>
        registry.RunAsync(c => c.ExecuteAsync(Command("SELECT mad.watch(@name)", new { name }, cancellationToken)), cancellationToken);

    public Task UnwatchAsync(string name, CancellationToken cancellationToken = default) =>
        registry.RunAsync(c => c.ExecuteAsync(Command("SELECT mad.unwatch(@name)", new { name }, cancellationToken)), cancellationToken);

    public Task<StreamLag> GetLagAsync(string name, CancellationToken cancellationToken = default) =>
        registry.RunAsync(c => c.QuerySingleAsync<StreamLag>(Command(Lag, new { name }, cancellationToken)), cancellationToken);

    public Task<IReadOnlyList<StreamLag>> ListLagsAsync(CancellationToken cancellationToken = default) =>
        registry.RunAsync<IReadOnlyList<StreamLag>>(async c => (await c.QueryAsync<StreamLag>(Command(Lags, null, cancellationToken))).ToList(), cancellationToken);

    // No command timeout: unwatch waits for a batch in flight to finish with the outbox.
    private static CommandDefinition Command(string sql, object? parameters, CancellationToken cancellationToken) =>
        new(sql, parameters, cancellationToken: cancellationToken, commandTimeout: 0);
}

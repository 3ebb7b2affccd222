using Dapper;
using ModelAsData.Core;
using Npgsql;

namespace ModelAsData.Postgres.Tokens;

/// <summary>
/// The bearer tokens of the sidecar's HTTP door (<c>mad tokens</c>), managed by <c>mad_admin</c> through the
/// <c>mad</c> functions: a token is shown once when created and kept only as its sha256. Failures are
/// <see cref="ModelAsDataException"/>s with the functions' own messages. Does not own the data source; thread-safe.
/// </summary>
public sealed class PostgresHttpTokens(NpgsqlDataSource dataSource)
{
    /// <summary>A new token acting as <paramref name="role"/>; the only time its text is seen.</summary>
    public async Task<string> CreateAsync(string role, string label, DateTimeOffset? expiresAt, CancellationToken cancellationToken = default) =>
        (await RunAsync(c => c.ExecuteScalarAsync<string>(new CommandDefinition(HttpTokenSql.Create, new { role, label, expiresAt = expiresAt?.UtcDateTime }, cancellationToken: cancellationToken)), cancellationToken))!;

    /// <summary>Revokes the live token of a label; no such token throws NotFound.</summary>
    public Task RevokeAsync(string label, CancellationToken cancellationToken = default) =>
        RunAsync(c => c.ExecuteAsync(new CommandDefinition(HttpTokenSql.Revoke, new { label }, cancellationToken: cancellationToken)), cancellationToken);

    /// <summary>Every token, newest first.</summary>
    public async Task<IReadOnlyList<HttpToken>> ListAsync(CancellationToken cancellationToken = default) =>
        (await RunAsync(c => c.QueryAsync<HttpToken>(new CommandDefinition(HttpTokenSql.List, cancellationToken: cancellationToken)), cancellationToken)).ToList();

    private async Task<T> RunAsync<T>(Func<NpgsqlConnection, Task<T>> action, CancellationToken cancellationToken)
    {
        try
        {
            await using var connection = await dataSource.OpenConnectionAsync(cancellationToken);
            return await action(connection);
        }
        catch (Exception e) when (PostgresErrors.CanMap(e))
        {
            throw PostgresErrors.Map(e, dataSource);
        }
    }
}

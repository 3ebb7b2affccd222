using Dapper;

namespace ModelAsData.IntegrationTests.Infrastructure;

/// <summary>Short helpers for tests that talk SQL directly, as a DBA would.</summary>
public static class Sql
{
    public static async Task<T> ScalarAsync<T>(this NpgsqlDataSource dataSource, string sql, object? parameters = null)
    {
        await using var connection = await dataSource.OpenConnectionAsync(TestContext.Current.CancellationToken);
        return (await connection.ExecuteScalarAsync<T>(new CommandDefinition(sql, parameters, cancellationToken: TestContext.Current.CancellationToken)))!;
    }

    public static async Task<IReadOnlyList<T>> QueryAsync<T>(this NpgsqlDataSource dataSource, string sql, object? parameters = null)
    {
        await using var connection = await dataSource.OpenConnectionAsync(TestContext.Current.CancellationToken);
        return (await connection.QueryAsync<T>(new CommandDefinition(sql, parameters, cancellationToken: TestContext.Current.CancellationToken))).ToList();
    }

    public static async Task ExecuteAsync(this NpgsqlDataSource dataSource, string sql, object? parameters = null)
    {
        await using var connection = await dataSource.OpenConnectionAsync(TestContext.Current.CancellationToken);
        await connection.ExecuteAsync(new CommandDefinition(sql, parameters, cancellationToken: TestContext.Current.CancellationToken));
    }

    /// <summary>Runs a statement that must fail, and returns the server's error.</summary>
    public static async Task<PostgresException> FailsAsync(this NpgsqlDataSource dataSource, string sql, object? parameters = null) =>
        await Assert.ThrowsAsync<PostgresException>(() => ExecuteAsync(dataSource, sql, parameters));

    /// <summary>A name no other test uses, valid as a model or alias name.</summary>
    public static string UniqueName(string prefix) => $"{prefix}_{Guid.NewGuid().ToString("N")[..10]}";
}

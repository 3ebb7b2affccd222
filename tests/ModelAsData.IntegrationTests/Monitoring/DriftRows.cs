using System.Globalization;
using Dapper;
using Microsoft.Data.Sqlite;

namespace ModelAsData.IntegrationTests.Monitoring;

/// <summary>
/// Deterministic iris-like rows, the same on both stores (doubles with one decimal, so PostgreSQL's double
/// precision and SQLite's REAL hold the same values), optionally shifted to make drift.
/// </summary>
internal static class DriftRows
{
    public static (long Id, double SepalLength, double SepalWidth, double PetalLength, double PetalWidth)[] Make(int rows, int seed, double shift = 0)
    {
        var random = new Random(seed);
        return Enumerable.Range(1, rows).Select(i => ((long)i,
            Math.Round(4.3 + (random.Next(37) * 0.1) + shift, 1),
            Math.Round(2.0 + (random.Next(23) * 0.1), 1),
            Math.Round(1.0 + (random.Next(59) * 0.1), 1),
            Math.Round(0.1 + (random.Next(25) * 0.1), 1))).ToArray();
    }

    public static async Task CreatePostgresAsync(NpgsqlDataSource dataSource, string table, int rows, int seed, double shift = 0)
    {
        var data = Make(rows, seed, shift);
        await dataSource.ExecuteAsync($"""
            CREATE TABLE IF NOT EXISTS public.{table} (id bigint PRIMARY KEY, sepal_length double precision, sepal_width double precision, petal_length double precision, petal_width double precision);
            TRUNCATE public.{table};
            INSERT INTO public.{table} SELECT * FROM unnest(@ids, @a, @b, @c, @d);
            """, new
        {
            ids = data.Select(r => r.Id).ToArray(), a = data.Select(r => r.SepalLength).ToArray(), b = data.Select(r => r.SepalWidth).ToArray(),
            c = data.Select(r => r.PetalLength).ToArray(), d = data.Select(r => r.PetalWidth).ToArray(),
        });
    }

    public static async Task CreateSqliteAsync(SqliteConnection connection, string table, int rows, int seed, double shift = 0)
    {
        await connection.ExecuteAsync($"CREATE TABLE IF NOT EXISTS {table} (id INTEGER PRIMARY KEY, sepal_length REAL, sepal_width REAL, petal_length REAL, petal_width REAL); DELETE FROM {table};");
        using var transaction = connection.BeginTransaction();
        foreach (var r in Make(rows, seed, shift))
        {
            await connection.ExecuteAsync($"INSERT INTO {table} VALUES (@Id, @SepalLength, @SepalWidth, @PetalLength, @PetalWidth)",
                new { r.Id, r.SepalLength, r.SepalWidth, r.PetalLength, r.PetalWidth }, transaction);
        }

        transaction.Commit();
    }

    public static string Describe(double? value) => value?.ToString("R", CultureInfo.InvariantCulture) ?? "null";
}

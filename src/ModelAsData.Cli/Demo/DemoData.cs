using Microsoft.Data.Sqlite;

namespace ModelAsData.Cli.Demo;

/// <summary>
/// The demo's sample tables, generated the same way every time (fixed seed, no download): <c>flowers</c>, drawn
/// around each iris species' measured means, and <c>passengers</c>, shaped like the titanic list.
/// </summary>
internal static class DemoData
{
    private static readonly (string Species, double[] Mean, double[] Sd)[] s_species =
    [
        ("setosa", [5.006, 3.428, 1.462, 0.246], [0.352, 0.379, 0.174, 0.105]),
        ("versicolor", [5.936, 2.770, 4.260, 1.326], [0.516, 0.314, 0.470, 0.198]),
        ("virginica", [6.588, 2.974, 5.552, 2.026], [0.636, 0.322, 0.552, 0.275]),
    ];

    public static void CreateFlowers(SqliteConnection connection, int rows, int seed = 2026)
    {
        var random = new Random(seed);
        using var transaction = connection.BeginTransaction();
        Execute(connection, transaction, """
            CREATE TABLE flowers (id INTEGER PRIMARY KEY, sepal_length REAL NOT NULL, sepal_width REAL NOT NULL,
                                  petal_length REAL NOT NULL, petal_width REAL NOT NULL, species TEXT NOT NULL)
            """);
        using var insert = Insert(connection, transaction, "INSERT INTO flowers VALUES ($id, $sl, $sw, $pl, $pw, $species)", "$id", "$sl", "$sw", "$pl", "$pw", "$species");
        for (var id = 1; id <= rows; id++)
        {
            var (species, mean, sd) = s_species[id % 3];
            insert.Parameters[0].Value = id;
            for (var f = 0; f < 4; f++)
            {
                insert.Parameters[f + 1].Value = Math.Round(Math.Max(0.1, mean[f] + (sd[f] * Gaussian(random))), 1);
            }

            insert.Parameters[5].Value = species;
            insert.ExecuteNonQuery();
        }

        transaction.Commit();
    }

    public static void CreatePassengers(SqliteConnection connection, int rows, int seed = 1912)
    {
        var random = new Random(seed);
        using var transaction = connection.BeginTransaction();
        Execute(connection, transaction, """
            CREATE TABLE passengers (id INTEGER PRIMARY KEY, pclass INTEGER NOT NULL, sex TEXT NOT NULL, age REAL,
                                     fare REAL NOT NULL, embarked TEXT NOT NULL)
            """);
        using var insert = Insert(connection, transaction, "INSERT INTO passengers VALUES ($id, $pclass, $sex, $age, $fare, $embarked)", "$id", "$pclass", "$sex", "$age", "$fare", "$embarked");
        string[] ports = ["S", "S", "S", "C", "Q"];
        for (var id = 1; id <= rows; id++)
        {
            var pclass = random.NextDouble() switch { < 0.25 => 1, < 0.46 => 2, _ => 3 };
            var fare = pclass switch { 1 => 30 + (random.NextDouble() * 200), 2 => 10 + (random.NextDouble() * 30), _ => 7 + (random.NextDouble() * 15) };
            insert.Parameters[0].Value = id;
            insert.Parameters[1].Value = pclass;
            insert.Parameters[2].Value = random.NextDouble() < 0.64 ? "male" : "female";
            // Every 500th passenger's age is unknown: the demo shows that row's error next to the others' scores.
            insert.Parameters[3].Value = id % 500 == 0 ? DBNull.Value : Math.Round(Math.Clamp(29.7 + (14 * Gaussian(random)), 0.5, 80), 0);
            insert.Parameters[4].Value = Math.Round(fare, 2);
            insert.Parameters[5].Value = ports[random.Next(ports.Length)];
            insert.ExecuteNonQuery();
        }

        transaction.Commit();
    }

    private static double Gaussian(Random random) =>
        Math.Sqrt(-2 * Math.Log(1 - random.NextDouble())) * Math.Cos(2 * Math.PI * random.NextDouble());

    private static void Execute(SqliteConnection connection, SqliteTransaction transaction, string sql)
    {
        using var command = connection.CreateCommand();
        command.Transaction = transaction;
        command.CommandText = sql;
        command.ExecuteNonQuery();
    }

    private static SqliteCommand Insert(SqliteConnection connection, SqliteTransaction transaction, string sql, params string[] parameters)
    {
        var command = connection.CreateCommand();
        command.Transaction = transaction;
        command.CommandText = sql;
        foreach (var parameter in parameters)
        {
            command.Parameters.Add(new SqliteParameter(parameter, null));
        }

        command.Prepare();
        return command;
    }
}

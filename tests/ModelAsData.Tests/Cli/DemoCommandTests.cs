using ModelAsData.Sqlite;
using ModelAsData.Tests.Sqlite;

namespace ModelAsData.Tests.Cli;

[Collection(CliCollection.Name)]
public sealed class DemoCommandTests() : SqliteFileCliTests("demo.db")
{
    [Fact]
    public async Task Demo_scores_the_sample_tables_and_shows_the_join_with_model_versions()
    {
        var result = await MadRunner.RunAsync("demo", "--db", Db, "--rows", "600");

        Assert.True(result.ExitCode == 0, result.ToString());
        Assert.Contains($"Created {Db} with tables flowers (600 rows) and passengers (400 rows).", result.Output);
        Assert.Contains("iris@1 (iris@production)", result.Output);
        Assert.Contains("FROM flowers f JOIN mad_out_flower_scores p USING (id)", result.Output);
        Assert.Contains("model_version", result.Output);
        Assert.Contains("mad_out_flower_scores: 600 rows by iris@1", result.Output);
        Assert.Contains("mad_out_passenger_scores: 400 rows by titanic@1", result.Output);
        Assert.Contains("Try next:", result.Output);
        Assert.DoesNotContain("error:", result.Output);

        await using var connection = await SqliteDatabase.OpenAsync(Db);
        Assert.Equal(600L, TempDatabase.Scalar(connection, "SELECT count(*) FROM flowers f JOIN mad_out_flower_scores p USING (id) WHERE p.model_version = 1"));
        // Most generated flowers get their own species back: the forest was trained on the same distributions.
        Assert.True((long)TempDatabase.Scalar(connection,
            "SELECT count(*) FROM flowers f JOIN mad_out_flower_scores p USING (id) WHERE p.label = CASE f.species WHEN 'setosa' THEN 0 WHEN 'versicolor' THEN 1 ELSE 2 END")! > 500);
    }

    [Fact]
    public async Task Demo_runs_again_on_its_own_file()
    {
        Assert.Equal(0, (await MadRunner.RunAsync("demo", "--db", Db, "--rows", "90")).ExitCode);
        var again = await MadRunner.RunAsync("demo", "--db", Db, "--rows", "120");
        Assert.True(again.ExitCode == 0, again.ToString());
        Assert.Contains("flowers (120 rows)", again.Output);

        await using var connection = await SqliteDatabase.OpenAsync(Db);
        Assert.Equal(120L, TempDatabase.Scalar(connection, "SELECT count(*) FROM flowers"));
        Assert.Equal(1L, TempDatabase.Scalar(connection, "SELECT count(*) FROM mad_model_versions WHERE model = 'iris'"));
    }

    [Fact]
    public async Task Demo_refuses_to_replace_a_file_that_is_not_a_demo()
    {
        await using (var connection = await SqliteDatabase.OpenAsync(Db))
        {
            TempDatabase.Execute(connection, "CREATE TABLE customers (id INTEGER PRIMARY KEY); INSERT INTO customers VALUES (1), (2)");
        }

        var result = await MadRunner.RunAsync("demo", "--db", Db, "--rows", "90");

        Assert.Equal(15, result.ExitCode);
        Assert.Contains($"error: {Db} exists and is not a demo database: choose another file with --db.", result.Output);
        await using var check = await SqliteDatabase.OpenAsync(Db);
        Assert.Equal(2L, TempDatabase.Scalar(check, "SELECT count(*) FROM customers"));
    }
}

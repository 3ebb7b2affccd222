using System.CommandLine;
using System.Text.Json.Nodes;
using Dapper;
using ModelAsData.Cli.Demo;
using ModelAsData.Core;
using ModelAsData.Core.Registry;
using ModelAsData.Sqlite;
using Spectre.Console;

namespace ModelAsData.Cli.Commands;

/// <summary>
/// <c>mad demo</c>: the embedded mode end to end in seconds: sample tables in a SQLite file, real models registered
/// with aliases, two prediction tables scored, and the SQL that joins predictions to rows, run.
/// </summary>
internal static class DemoCommand
{
    private const string FlowerQuery = """
        SELECT f.id, f.species, p.label, round(p.probability_0, 3) AS p_setosa, round(p.probability_1, 3) AS p_versicolor,
               round(p.probability_2, 3) AS p_virginica, p.model_version
        FROM flowers f JOIN mad_out_flower_scores p USING (id)
        ORDER BY f.id LIMIT 6
        """;

    private const string ConfusionQuery = """
        SELECT f.species, p.label AS predicted, count(*) AS flowers
        FROM flowers f JOIN mad_out_flower_scores p USING (id)
        GROUP BY f.species, p.label ORDER BY f.species, p.label
        """;

    private const string SurvivalQuery = """
        SELECT s.pclass, s.sex, count(*) AS passengers, round(avg(p.probabilities_1), 3) AS survival,
               sum(p.error IS NOT NULL) AS errors, max(p.model_version) AS version
        FROM passengers s JOIN mad_out_passenger_scores p USING (id)
        GROUP BY s.pclass, s.sex ORDER BY s.pclass, s.sex
        """;

    private const string ErrorQuery = "SELECT id, error FROM mad_out_passenger_scores WHERE error IS NOT NULL LIMIT 2";

    private const string InlineQuery = """
        SELECT id, predict('iris', sepal_length, sepal_width, petal_length, petal_width) AS label,
               round(predict_proba('iris@production', 2, sepal_length, sepal_width, petal_length, petal_width), 3) AS p_virginica,
               predict('iris_sepal@1', sepal_length, sepal_width) AS label_from_sepals
        FROM flowers ORDER BY id LIMIT 5
        """;

    public static Command Create(CliContext cli)
    {
        var rows = new Option<int>("--rows") { Description = "How many flowers to generate (passengers: two thirds of that).", DefaultValueFactory = _ => 3000 };
        var command = new Command("demo", "Make a SQLite file with sample rows and real models, score it, and show the SQL that joins predictions to rows.") { rows };
        cli.SetAction(command, async (parse, ct) =>
        {
            var db = parse.GetValue(cli.Db) is { Length: > 0 } given && !MadStore.IsPostgres(given) ? given : "demo.db";
            await RunAsync(cli.Console, db, parse.GetValue(rows), ct);
            return 0;
        });
        return command;
    }

    internal static async Task RunAsync(IAnsiConsole console, string db, int rows, CancellationToken cancellationToken)
    {
        await DemoFile.ReplaceAsync(db, cancellationToken);
        await using var store = await MadStore.OpenAsync(db, cancellationToken);
        var connection = store.Sqlite!;
        var passengers = Math.Max(10, rows * 2 / 3);
        DemoData.CreateFlowers(connection, rows);
        DemoData.CreatePassengers(connection, passengers);
        console.MarkupLineInterpolated($"[bold]1.[/] Created [bold]{db}[/] with tables flowers ({rows:N0} rows) and passengers ({passengers:N0} rows).");

        console.MarkupLine("[bold]2.[/] Registered real ONNX models (see models/MANIFEST.md) as versions, with aliases:");
        var iris = new JsonObject { ["features"] = new JsonObject { ["float_input"] = new JsonArray("sepal_length", "sepal_width", "petal_length", "petal_width") } };
        await PushAsync(console, store.Registry, "iris", "skl2onnx_rf_iris.onnx", iris, "production", cancellationToken);
        await PushAsync(console, store.Registry, "iris_sepal", "skl2onnx_logreg_iris.onnx", [], null, cancellationToken);
        await PushAsync(console, store.Registry, "titanic", "skl2onnx_pipeline_titanic_nozipmap.onnx", [], "production", cancellationToken);

        console.MarkupLine("[bold]3.[/] Bound them to the tables and scored every row:");
        var tables = store.Tables;
        await tables.CreateAsync(new PredictionTableSpec("flower_scores", "flowers", ["id"], "iris", null), cancellationToken);
        await tables.CreateAsync(new PredictionTableSpec("passenger_scores", "passengers", ["id"], "titanic", null), cancellationToken);
        foreach (var name in new[] { "flower_scores", "passenger_scores" })
        {
            var result = await TablesCommand.RefreshWithProgressAsync(console, tables, name, cancellationToken);
            console.MarkupLineInterpolated($"   mad_out_{name}: {result.Rows:N0} rows by {result.Version} in {result.Elapsed.TotalMilliseconds:N0} ms, {result.Failed} with an error");
        }

        console.MarkupLine("[bold]4.[/] Predictions are rows: JOIN them in plain SQL. Every row says which version made it.");
        foreach (var query in new[] { FlowerQuery, ConfusionQuery, SurvivalQuery, ErrorQuery })
        {
            await ShowAsync(console, connection, query, cancellationToken);
        }

        console.MarkupLine("[bold]5.[/] Or score inline: predict() and predict_proba() are SQL functions of the file's connection.");
        await ShowAsync(console, connection, InlineQuery, cancellationToken);

        console.MarkupLine("[bold]Try next:[/]");
        console.WriteLine($$"""
              mad sql --db {{db}} "SELECT species, predict('iris', sepal_length, sepal_width, petal_length, petal_width) FROM flowers LIMIT 3"
              mad sql --db {{db}}                                  (a prompt)
              mad predict --db {{db}} iris --json '{"float_input": [6.3, 3.3, 6.0, 2.5]}'
              mad models list --db {{db}}                          mad models show --db {{db}} iris@production
              mad models push --db {{db}} iris {{ShippedModels.Path("skl2onnx_rf_iris.onnx")}}   then   mad models alias --db {{db}} iris production 2
              mad tables refresh --db {{db}} flower_scores         mad models rollback --db {{db}} iris production
            """);
    }

    private static async Task PushAsync(IAnsiConsole console, IModelRegistry registry, string name, string file, JsonObject metadata, string? alias, CancellationToken cancellationToken)
    {
        var bytes = await File.ReadAllBytesAsync(ShippedModels.Path(file), cancellationToken);
        metadata["source"] = $"models/{file}";
        var version = await registry.PushAsync(name, bytes, metadata, cancellationToken);
        if (alias is not null)
        {
            await registry.SetAliasAsync(name, alias, version.Version, "mad demo", cancellationToken);
        }

        var signature = version.Signature!;
        console.MarkupLineInterpolated($"   {version}{(alias is null ? "" : $" ({name}@{alias})")}: {file}, inputs {signature.DescribeInputs()} → {string.Join(", ", signature.Columns.Select(c => c.Name))}");
    }

    private static async Task ShowAsync(IAnsiConsole console, Microsoft.Data.Sqlite.SqliteConnection connection, string query, CancellationToken cancellationToken)
    {
        console.Write(new Panel(new Text(query)) { Border = BoxBorder.None, Padding = new Padding(3, 0, 0, 0) });
        await SqlCommand.RunAsync(console, connection, query, 50, cancellationToken);
    }
}

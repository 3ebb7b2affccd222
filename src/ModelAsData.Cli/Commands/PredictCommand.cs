using System.CommandLine;
using Spectre.Console;
using ModelAsData.Core;
using ModelAsData.Core.Scoring;
using ModelAsData.Postgres;
using ModelAsData.Postgres.Requests;

namespace ModelAsData.Cli.Commands;

/// <summary><c>mad predict REF --json '{...}'</c>: one row, online.</summary>
internal static class PredictCommand
{
    public static Command Create(CliContext cli)
    {
        var reference = new Argument<string>("reference") { Description = "name, name@alias or name@version." };
        var json = new Option<string>("--json")
        {
            Description = "The features: model input names to a value or an array, e.g. '{\"float_input\": [5.1, 3.5, 1.4, 0.2]}'.",
            Required = true,
        };
        var command = new Command("predict", "Score one row of features given as JSON; prints the prediction as JSON.") { reference, json };
        cli.SetAction(command, async (parse, ct) =>
        {
            var db = cli.RequireDb(parse);
            if (MadStore.IsPostgres(db))
            {
                // Through the database (CALL mad.predict), so the answer is made by a sidecar and logged.
                await using var dataSource = PostgresDataSource.Create(db, "mad predict");
                var called = await new PostgresRequestClient(dataSource).CallAsync(parse.GetValue(reference)!, parse.GetValue(json)!, ct);
                cli.Console.WriteLine(called.ToJsonString());
                return 0;
            }

            await using var store = await MadStore.OpenAsync(db, ct);
            var predictor = new RequestPredictor(store.Registry, MadStore.Cache);
            var answer = await predictor.PredictAsync(ModelReference.Parse(parse.GetValue(reference)), JsonFeatures.Parse(parse.GetValue(json)!), ct);
            cli.Console.WriteLine(answer.ToJsonString());
            return 0;
        });
        return command;
    }
}

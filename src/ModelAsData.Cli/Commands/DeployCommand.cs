using System.CommandLine;
using System.Globalization;
using ModelAsData.Core;
using ModelAsData.Core.Deployments;
using Spectre.Console;

namespace ModelAsData.Cli.Commands;

/// <summary>
/// <c>mad deploy MODEL ALIAS --version N | --canary N --percent P [--steps 5,25,50,100 --every 1h] | --shadow N</c>, and
/// <c>mad deploy status | promote | abort | history MODEL ALIAS [--at TIME]</c> (docs/DEPLOYMENTS.md).
/// </summary>
internal static class DeployCommand
{
    /// <summary>The verbs written before the model: <c>mad deploy status churn production</c>.</summary>
    private static readonly string[] s_verbs = ["status", "promote", "abort", "history"];

    public static Command Create(CliContext cli)
    {
        // status|promote|abort are words before the model rather than sub-commands, so that `mad deploy MODEL ALIAS`
        // and `mad deploy status MODEL ALIAS` read as DESIGN.md writes them (a parent with arguments would show its
        // sub-commands' usage as `deploy <model> <alias> status`).
        var model = new Argument<string>("model") { Description = "The model, e.g. churn; or status, promote, abort or history, followed by the model." };
        var alias = new Argument<string>("alias") { Description = "The alias whose deployment changes, e.g. production (after a verb: the model)." };
        var verbAlias = new Argument<string?>("verb-alias") { Description = "After status, promote, abort or history: the alias.", Arity = ArgumentArity.ZeroOrOne };
        var version = new Option<int?>("--version") { Description = "Blue-green: serve this version to every key at once (ends any canary)." };
        var canary = new Option<int?>("--canary") { Description = "Serve this version to --percent of the keys, always the same keys." };
        var percent = new Option<double?>("--percent") { Description = "With --canary: the share of keys, in (0, 100]; with --shadow: the share scored (default 100)." };
        var steps = new Option<string?>("--steps") { Description = "With --canary (PostgreSQL): rising percents the sidecars step through, e.g. 5,25,50,100." };
        var every = new Option<string?>("--every") { Description = "With --steps: the time between steps, e.g. 30m, 1h, 1d." };
        var shadow = new Option<int?>("--shadow") { Description = "Score this version beside the served one, stored and never served." };
        var reason = new Option<string?>("--reason") { Description = "Why, kept in the deployment history." };
        var at = new Option<string?>("--at") { Description = "With history: what the alias served at that moment (as mad.deployment_at), e.g. 2026-11-01T09:00:00Z; without an offset, UTC." };
        var command = new Command("deploy",
            "Change what an alias serves: --version N (blue-green), --canary N --percent P [--steps --every] (canary, rolling) or --shadow N. " +
            "`mad deploy status|promote|abort|history MODEL ALIAS`: show per arm rows, error rate and step; make the canary the champion; end the canary and shadow; " +
            "list every change with who and why (--at TIME: what was deployed then).")
        {
            model, alias, verbAlias, version, canary, percent, steps, every, shadow, reason, at,
        };
        cli.SetAction(command, async (parse, ct) =>
        {
            var first = parse.GetValue(model)!;
            if (s_verbs.Contains(first, StringComparer.Ordinal))
            {
                var target = parse.GetValue(verbAlias)
                    ?? throw new ModelAsDataException(ErrorCode.InvalidArgument, $"Give the model and the alias: mad deploy {first} MODEL ALIAS, e.g. mad deploy {first} churn production.");
                await using var verbStore = await MadStore.OpenAsync(cli.RequireDb(parse), ct);
                await RunVerbAsync(cli, verbStore, first, parse.GetValue(alias)!, target, parse.GetValue(at), ct);
                return 0;
            }

            if (parse.GetValue(verbAlias) is { } extra)
            {
                throw new ModelAsDataException(ErrorCode.InvalidArgument, $"Unexpected '{extra}': mad deploy takes MODEL ALIAS and an option, or status|promote|abort MODEL ALIAS.");
            }

            var (name, targetAlias) = (first, parse.GetValue(alias)!);
            var chosen = new[] { parse.GetValue(version) is not null, parse.GetValue(canary) is not null, parse.GetValue(shadow) is not null }.Count(c => c);
            if (chosen != 1)
            {
                throw new ModelAsDataException(ErrorCode.InvalidArgument,
                    $"Give one of --version N (blue-green), --canary N --percent P (canary) or --shadow N (shadow), e.g. mad deploy {name} {targetAlias} --canary 9 --percent 10; or status|promote|abort {name} {targetAlias}.");
            }

            await using var store = await MadStore.OpenAsync(cli.RequireDb(parse), ct);
            Deployment deployment;
            if (parse.GetValue(version) is { } served)
            {
                deployment = await store.Deployments.DeployAsync(name, targetAlias, served, parse.GetValue(reason), ct);
            }
            else if (parse.GetValue(canary) is { } canaryVersion)
            {
                var stepList = ParseSteps(parse.GetValue(steps));
                var stepEvery = parse.GetValue(every) is { } text ? ParseDuration(text) : (TimeSpan?)null;
                deployment = await store.Deployments.DeployCanaryAsync(name, targetAlias, canaryVersion, parse.GetValue(percent), stepList, stepEvery, parse.GetValue(reason), ct);
            }
            else
            {
                deployment = await store.Deployments.DeployShadowAsync(name, targetAlias, parse.GetValue(shadow)!.Value, parse.GetValue(percent) ?? 100, parse.GetValue(reason), ct);
            }

            Show(cli, deployment);
            return 0;
        });
        return command;
    }

    private static async Task RunVerbAsync(CliContext cli, MadStore store, string verb, string name, string target, string? at, CancellationToken ct)
    {
        if (at is not null && verb != "history")
        {
            throw new ModelAsDataException(ErrorCode.InvalidArgument, $"--at goes with history: mad deploy history {name} {target} --at 2026-11-01T09:00:00Z.");
        }

        switch (verb)
        {
            case "history":
                await DeployHistory.ShowAsync(cli, store.Deployments, name, target, at, ct);
                return;
            case "promote":
                Show(cli, await store.Deployments.PromoteAsync(name, target, cancellationToken: ct));
                return;
            case "abort":
                Show(cli, await store.Deployments.AbortAsync(name, target, cancellationToken: ct));
                return;
        }

        Show(cli, await store.Deployments.GetAsync(name, target, ct));
        var report = await store.Deployments.ReportAsync(name, target, ct);
        // The legacy columns only when a table served through the alias names a legacy column (mad tables legacy).
        var legacy = report.Any(a => a.LegacyShareEqual is not null || a.LegacyMeanAbsoluteDifference is not null);
        var table = new Table().AddColumns("arm", "version", "share", "rows scored", "rows failed", "error rate", "equal to served", "mean abs. difference", "rows compared");
        if (legacy)
        {
            table.AddColumns("equal to legacy", "mean abs. difference to legacy");
        }

        var errors = new List<string>();
        foreach (var arm in report)
        {
            var cells = new List<string>
            {
                arm.Arm, Text(arm.Version), Text(arm.Percent) + " %", Text(arm.RowsScored), Text(arm.RowsFailed),
                arm.ErrorRate is { } rate ? (rate * 100).ToString("0.##", CultureInfo.InvariantCulture) + " %" : "-",
                Share(arm.ShareEqual), Difference(arm.MeanAbsoluteDifference), arm.RowsCompared is { } compared ? Text(compared) : "-",
            };
            if (legacy)
            {
                cells.AddRange([Share(arm.LegacyShareEqual), Difference(arm.LegacyMeanAbsoluteDifference)]);
            }

            table.AddRow([.. cells]);
            if (arm.ShadowError is { } error)
            {
                errors.Add($"shadow version {Text(arm.Version)}: {error}");
            }
        }

        cli.Console.Write(table);
        if (report.Any(a => a.Arm == Arms.Canary && a.RowsCompared is not null))
        {
            // The served version of a canary's key is the canary itself: its agreement is with the champion (docs/DEPLOYMENTS.md).
            cli.Console.WriteLine("The canary is compared with the champion on a sample of its keys, scored by both in refreshes.");
        }

        foreach (var error in errors)
        {
            cli.Console.WriteLine(error);
        }
    }

    internal static void Show(CliContext cli, Deployment d)
    {
        var served = $"{d.Model}@{d.Alias}: version {d.Version}";
        if (d.CanaryVersion is { } canary)
        {
            served += $", canary version {canary} at {Text(d.CanaryPercent!.Value)} % of keys (seed {d.Seed})";
            if (d.Steps is { Count: > 0 } steps)
            {
                served += $", steps {string.Join(",", steps.Select(Text))} every {d.StepEvery}" + (d.NextStepAt is { } next ? $", next at {next:u}" : "");
            }
        }

        if (d.ShadowVersion is { } shadow)
        {
            served += $", shadow version {shadow} on {Text(d.ShadowPercent!.Value)} % of keys";
        }

        cli.Console.MarkupLineInterpolated($"{served}");
    }

    private static string Share(double? share) => share is { } s ? (s * 100).ToString("0.##", CultureInfo.InvariantCulture) + " %" : "-";

    private static string Difference(double? difference) => difference is { } d ? d.ToString("0.#####", CultureInfo.InvariantCulture) : "-";

    internal static string Text(double value) => value.ToString(CultureInfo.InvariantCulture);

    private static string Text(long value) => value.ToString(CultureInfo.InvariantCulture);

    internal static IReadOnlyList<double>? ParseSteps(string? text)
    {
        if (text is null)
        {
            return null;
        }

        return text.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries).Select(s =>
            double.TryParse(s, NumberStyles.Float, CultureInfo.InvariantCulture, out var step) ? step
                : throw new ModelAsDataException(ErrorCode.InvalidArgument, $"--steps takes rising percents separated by commas, e.g. 5,25,50,100; '{s}' is not a number.")).ToList();
    }

    /// <summary>30s, 30m, 1h, 1d (or anything TimeSpan parses, e.g. 01:30:00).</summary>
    internal static TimeSpan ParseDuration(string text)
    {
        var unit = text.Length > 0 ? text[^1] : ' ';
        if ("smhd".Contains(unit, StringComparison.Ordinal) && double.TryParse(text[..^1], NumberStyles.Float, CultureInfo.InvariantCulture, out var n) && n > 0)
        {
            return unit switch { 's' => TimeSpan.FromSeconds(n), 'm' => TimeSpan.FromMinutes(n), 'h' => TimeSpan.FromHours(n), _ => TimeSpan.FromDays(n) };
        }

        return TimeSpan.TryParse(text, CultureInfo.InvariantCulture, out var span) && span > TimeSpan.Zero ? span
            : throw new ModelAsDataException(ErrorCode.InvalidArgument, $"--every takes a duration such as 30m, 1h or 1d; '{text}' is not one.");
    }
}

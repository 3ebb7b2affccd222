using System.Globalization;
using ModelAsData.Core;
using ModelAsData.Core.Deployments;
using Spectre.Console;

namespace ModelAsData.Cli.Commands;

/// <summary>
/// <c>mad deploy history MODEL ALIAS [--at TIME]</c>: every change of a deployment with who and why, or what it served
/// at a past moment (mad.deployment_at on PostgreSQL, the same rule on SQLite).
/// </summary>
internal static class DeployHistory
{
    public static async Task ShowAsync(CliContext cli, IDeployments deployments, string model, string alias, string? at, CancellationToken ct)
    {
        if (at is not null)
        {
            var moment = ParseMoment(at);
            if (await deployments.DeploymentAtAsync(model, alias, moment, ct) is { } then)
            {
                cli.Console.MarkupLineInterpolated($"At {moment:u}:");
                DeployCommand.Show(cli, then);
            }
            else
            {
                cli.Console.MarkupLineInterpolated($"At {moment:u} {model}@{alias} did not exist yet: see its first change with mad deploy history {model} {alias}");
            }

            return;
        }

        var table = new Table().AddColumns("changed at", "kind", "version", "canary", "shadow", "by", "reason");
        foreach (var c in await deployments.HistoryAsync(model, alias, ct))
        {
            table.AddRow(c.ChangedAt.ToString("u", CultureInfo.InvariantCulture), c.Kind, c.Version.ToString(CultureInfo.InvariantCulture),
                c.CanaryVersion is { } canary ? $"{canary} at {DeployCommand.Text(c.CanaryPercent ?? 0)} %" : "-",
                c.ShadowVersion is { } shadow ? $"{shadow} on {DeployCommand.Text(c.ShadowPercent ?? 0)} %" : "-",
                Markup.Escape(c.ChangedBy), Markup.Escape(c.Reason ?? "-"));
        }

        cli.Console.Write(table);
    }

    /// <summary>An ISO-8601 moment; without an offset it is UTC, as the stores keep time.</summary>
    internal static DateTimeOffset ParseMoment(string text) =>
        DateTimeOffset.TryParse(text, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal | DateTimeStyles.AdjustToUniversal, out var moment) ? moment
            : throw new ModelAsDataException(ErrorCode.InvalidArgument, $"--at takes a moment such as 2026-11-01T09:00:00Z or '2026-11-01 09:00'; '{text}' is not one.");
}

using System.CommandLine;
using System.Globalization;
using ModelAsData.Core;
using ModelAsData.Core.Registry;
using Spectre.Console;

namespace ModelAsData.Cli.Commands;

/// <summary><c>mad jobs [follow ID]</c>: refresh jobs on PostgreSQL and their progress, and the live lag of watched tables.</summary>
internal static class JobsCommand
{
    public static Command Create(CliContext cli)
    {
        var limit = new Option<int>("--limit") { Description = "How many of the newest jobs to list.", DefaultValueFactory = _ => 20 };
        var jobs = new Command("jobs", "List refresh jobs with their state and progress, and watched tables with their lag (PostgreSQL).") { limit };
        cli.SetAction(jobs, async (parse, ct) =>
        {
            await using var store = await MadStore.OpenAsync(cli.RequireDb(parse), ct);
            Print(cli.Console, await store.Jobs.ListJobsAsync(parse.GetValue(limit), ct));
            if (store.Streaming.IsSupported && await store.Streaming.ListLagsAsync(ct) is { Count: > 0 } streams)
            {
                PrintStreams(cli.Console, streams);
            }

            return 0;
        });
        jobs.Subcommands.Add(Follow(cli, "follow"));
        jobs.Subcommands.Add(Follow(cli, "watch", "The same as follow (DESIGN.md's older word)."));
        return jobs;
    }

    /// <summary>
    /// <c>mad jobs follow ID</c>. "Watch" means streaming (<c>mad tables watch</c>), so following a job has its own
    /// word; <c>watch</c> stays as a twin so DESIGN.md's <c>mad jobs [watch ID]</c> keeps working. It is listed,
    /// not hidden: System.CommandLine prints nothing for <c>--help</c> of a hidden command.
    /// </summary>
    private static Command Follow(CliContext cli, string verb, string description = "Follow a job with a progress bar until it finishes.")
    {
        var id = new Argument<long>("id") { Description = "The job id (from mad tables refresh or mad jobs)." };
        var command = new Command(verb, description) { id };
        cli.SetAction(command, async (parse, ct) =>
        {
            await using var store = await MadStore.OpenAsync(cli.RequireDb(parse), ct);
            var job = await FollowAsync(cli.Console, store.Jobs, parse.GetValue(id), ct);
            Print(cli.Console, [job]);
            return 0;
        });
        return command;
    }

    /// <summary>A progress bar of rows done / total and rows/s until the job finishes; a failed job throws with its error.</summary>
    internal static Task<RefreshJob> FollowAsync(IAnsiConsole console, IRefreshJobs jobs, long id, CancellationToken cancellationToken) =>
        console.Progress()
            .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new RemainingTimeColumn(), new SpinnerColumn())
            .StartAsync(async context =>
            {
                var task = context.AddTask($"job {id}");
                var progress = new Progress<RefreshJob>(j =>
                {
                    task.Description = Markup.Escape(string.Create(CultureInfo.InvariantCulture,
                        $"job {j.Id} {j.Table}: {j.RowsDone:N0}/{j.RowsTotal:N0} rows, {j.RowsPerSecond(DateTimeOffset.UtcNow):N0} rows/s"));
                    task.MaxValue = Math.Max(1, Math.Max(j.RowsTotal, j.RowsDone));
                    task.Value = j.RowsDone;
                });
                var job = await jobs.WaitForJobAsync(id, progress, cancellationToken);
                task.Value = task.MaxValue;
                return job;
            });

    private static void Print(IAnsiConsole console, IReadOnlyList<RefreshJob> jobs)
    {
        var view = new Table().AddColumns("id", "table", "model", "state", "tasks", "rows", "errors", "rows/s", "created", "by", "error");
        var now = DateTimeOffset.UtcNow;
        foreach (var j in jobs)
        {
            view.AddRow(
                j.Id.ToString(CultureInfo.InvariantCulture), Markup.Escape(j.Table), Markup.Escape($"{j.Model}@{j.Version}"), Markup.Escape(j.State),
                $"{j.TasksDone}/{j.TasksTotal}",
                string.Create(CultureInfo.InvariantCulture, $"{j.RowsDone:N0}/{j.RowsTotal:N0}"),
                j.RowsFailed.ToString("N0", CultureInfo.InvariantCulture),
                j.RowsPerSecond(now).ToString("N0", CultureInfo.InvariantCulture),
                j.CreatedAt.ToString("u", CultureInfo.InvariantCulture), Markup.Escape(j.CreatedBy), Markup.Escape(j.Error ?? ""));
        }

        console.Write(view);
    }

    /// <summary>Streaming is a job that never ends: each watched table's keys waiting, oldest age, rows/s and error.</summary>
    private static void PrintStreams(IAnsiConsole console, IReadOnlyList<StreamLag> streams)
    {
        var view = new Table().Title("streaming (watched tables)").AddColumns("table", "keys waiting", "oldest", "rows/s", "error");
        foreach (var s in streams)
        {
            view.AddRow(Markup.Escape(s.Name), s.Waiting.ToString("N0", CultureInfo.InvariantCulture),
                string.Create(CultureInfo.InvariantCulture, $"{s.OldestSeconds ?? 0:F3} s"), s.RowsPerSecond.ToString("N0", CultureInfo.InvariantCulture),
                Markup.Escape(s.Error ?? ""));
        }

        console.Write(view);
    }
}

namespace ModelAsData.Postgres.Jobs;

/// <summary>
/// How to run one refresh task, as <c>mad.task_plan</c> builds it: the read of the task's key range, the build table
/// its predictions are copied into, and the key columns' types (keys are copied in their own type).
/// </summary>
internal sealed class TaskPlan : ReadPlan
{
    public string BuildTable { get; set; } = "";

    public string[] KeyTypes { get; set; } = [];

    /// <summary>Set on the first task of a job not planned yet: how to count and sample the source (as its owner).</summary>
    public JobPlanning? Planning { get; set; }

    public static TaskPlan Parse(string json) => Parse<TaskPlan>(json, "mad.task_plan");
}

/// <summary>
/// How a sidecar plans a job (<c>mad.task_plan</c>'s <c>planning</c>): <see cref="Count"/> counts the source's rows;
/// <see cref="Sample"/> ($1 the percentage of the table to sample, $2 the number of tasks) returns the key bounds
/// between tasks, as text arrays in key order. Both run as the binding's owner; <c>mad.plan_job</c> records the result.
/// </summary>
internal sealed class JobPlanning
{
    public string Count { get; set; } = "";

    public string Sample { get; set; } = "";

    public long TaskRows { get; set; }

    public int MaxTasks { get; set; }

    /// <summary>How many tasks a source of <paramref name="total"/> rows is split into (as 004's refresh did).</summary>
    public int TasksFor(long total) =>
        (int)Math.Max(1, Math.Min(MaxTasks, Math.Ceiling(total / (double)Math.Max(1, TaskRows))));

    /// <summary>The share of the table to sample, in percent: about a thousand rows per task.</summary>
    public static double SamplePercent(int tasks, long total) =>
        Math.Min(100, Math.Round(100.0 * tasks * 1000 / Math.Max(1, total), 4));
}

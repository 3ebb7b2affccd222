namespace ModelAsData.Postgres.Jobs;

/// <summary>
/// How to run one refresh task, as <c>mad.task_plan</c> builds it: the read of the task's key range, the build table
/// its predictions are copied into, and the key columns' types (keys are copied in their own type).
/// </summary>
internal sealed class TaskPlan : ReadPlan
{
    public string BuildTable { get; set; } = "";

    public string[] KeyTypes { get; set; } = [];

    public static TaskPlan Parse(string json) => Parse<TaskPlan>(json, "mad.task_plan");
}

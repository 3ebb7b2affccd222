namespace ModelAsData.IntegrationTests.Requests;

/// <summary>A <see cref="DatabaseTests"/> class whose tests push iris models and call them through sidecars.</summary>
public abstract class OnlineRequestTests(PostgresDatabase database) : DatabaseTests(database)
{
    /// <summary>Pushes a ready rf_iris under a new name and returns the name.</summary>
    protected Task<string> PushIrisAsync() => RequestSupport.PushIrisAsync(Database);

    /// <summary>Starts an in-process sidecar and waits until its request worker holds its ticket.</summary>
    protected Task<RunningSidecar> StartSidecarAsync(string? http = null) => RequestSupport.StartSidecarAsync(Database, http);

    protected Task WaitForWorkerAsync(string sidecarId, bool alive = true) => RequestSupport.WaitForWorkerAsync(Database, sidecarId, alive);
}

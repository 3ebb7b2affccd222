namespace ModelAsData.Core.Deployments;

/// <summary>
/// Deployments of one store: what each alias serves. One implementation per store (the <c>mad</c> SQL functions on
/// PostgreSQL, the same rules in-process on SQLite); the CLI sees only this. Errors name what exists.
/// </summary>
public interface IDeployments
{
    /// <summary>Basic / blue-green: the alias serves <paramref name="version"/> to every key from now on; any canary ends.</summary>
    Task<Deployment> DeployAsync(string model, string alias, int version, string? reason = null, CancellationToken cancellationToken = default);

    /// <summary>
    /// Canary: <paramref name="percent"/> of the keys get <paramref name="version"/> (a new seed); with steps, the
    /// percent rises through them every <paramref name="stepEvery"/> and the canary is promoted after the last reaches 100.
    /// </summary>
    Task<Deployment> DeployCanaryAsync(string model, string alias, int version, double? percent, IReadOnlyList<double>? steps = null,
        TimeSpan? stepEvery = null, string? reason = null, CancellationToken cancellationToken = default);

    /// <summary>Shadow: <paramref name="version"/> is scored beside the served one for <paramref name="percent"/> of keys, never served.</summary>
    Task<Deployment> DeployShadowAsync(string model, string alias, int version, double percent = 100, string? reason = null, CancellationToken cancellationToken = default);

    /// <summary>Makes the running canary the champion.</summary>
    Task<Deployment> PromoteAsync(string model, string alias, string? reason = null, CancellationToken cancellationToken = default);

    /// <summary>Ends the canary and the shadow: every key gets the champion again.</summary>
    Task<Deployment> AbortAsync(string model, string alias, string? reason = null, CancellationToken cancellationToken = default);

    /// <summary>What the alias serves now; an alias that does not exist throws NotFound naming the aliases that do.</summary>
    Task<Deployment> GetAsync(string model, string alias, CancellationToken cancellationToken = default);

    /// <summary>Per arm: version, share, rows scored and failed in the prediction tables served through the alias.</summary>
    Task<IReadOnlyList<DeploymentArm>> ReportAsync(string model, string alias, CancellationToken cancellationToken = default);

    /// <summary>
    /// Legacy replacement: names the column of <paramref name="table"/>'s source that holds the legacy system's
    /// prediction, and the output column it is compared with (default: the first output of its kind, a label for a
    /// text or integer column, a value for a real one); a null <paramref name="column"/> forgets it. Errors name the
    /// prediction tables, the source's columns or the outputs that exist.
    /// </summary>
    Task<LegacyColumn> SetLegacyColumnAsync(string table, string? column, string? output = null, CancellationToken cancellationToken = default);

    /// <summary>The legacy column <paramref name="table"/> names (a null column: none).</summary>
    Task<LegacyColumn> GetLegacyColumnAsync(string table, CancellationToken cancellationToken = default);

    /// <summary>Per arm and version (champion, canary, the shadow's rows), the table's agreement with its legacy column; empty when it names none.</summary>
    Task<IReadOnlyList<LegacyAgreement>> LegacyAgreementAsync(string table, CancellationToken cancellationToken = default);

    /// <summary>
    /// What the alias served at a past moment, as PostgreSQL's mad.deployment_at answers it: the champion as the
    /// alias history has it then, the canary and shadow of the last change at or before it; null when the alias did
    /// not exist yet. An alias that does not exist now throws NotFound naming the aliases that do.
    /// </summary>
    Task<Deployment?> DeploymentAtAsync(string model, string alias, DateTimeOffset at, CancellationToken cancellationToken = default);

    /// <summary>Every change of the alias's deployment, newest first.</summary>
    Task<IReadOnlyList<DeploymentChange>> HistoryAsync(string model, string alias, CancellationToken cancellationToken = default);
}

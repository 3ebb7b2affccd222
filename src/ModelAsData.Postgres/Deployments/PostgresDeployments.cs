using Dapper;
using ModelAsData.Core.Deployments;
using ModelAsData.Postgres.Registry;
using Npgsql;

namespace ModelAsData.Postgres.Deployments;

/// <summary>
/// Deployments in PostgreSQL: every call goes through the <c>mad</c> SQL functions (mad.deploy, mad.deploy_canary, …),
/// so SQL users and this class share one set of rules, checked against the privileges of the login that calls.
/// Thread-safe; does not own the registry's data source.
/// </summary>
public sealed class PostgresDeployments(PostgresModelRegistry registry) : IDeployments
{
    public Task<Deployment> DeployAsync(string model, string alias, int version, string? reason = null, CancellationToken cancellationToken = default) =>
        ChangeAsync(DeploymentSql.Deploy, new { model, alias, version, reason }, model, alias, cancellationToken);

    public Task<Deployment> DeployCanaryAsync(string model, string alias, int version, double? percent, IReadOnlyList<double>? steps = null,
        TimeSpan? stepEvery = null, string? reason = null, CancellationToken cancellationToken = default) =>
        ChangeAsync(DeploymentSql.DeployCanary, new { model, alias, version, percent, steps = steps?.ToArray(), stepEvery, reason }, model, alias, cancellationToken);

    public Task<Deployment> DeployShadowAsync(string model, string alias, int version, double percent = 100, string? reason = null, CancellationToken cancellationToken = default) =>
        ChangeAsync(DeploymentSql.DeployShadow, new { model, alias, version, percent, reason }, model, alias, cancellationToken);

    public Task<Deployment> PromoteAsync(string model, string alias, string? reason = null, CancellationToken cancellationToken = default) =>
        ChangeAsync(DeploymentSql.Promote, new { model, alias, reason }, model, alias, cancellationToken);

    public Task<Deployment> AbortAsync(string model, string alias, string? reason = null, CancellationToken cancellationToken = default) =>
        ChangeAsync(DeploymentSql.Abort, new { model, alias, reason }, model, alias, cancellationToken);

    public Task<Deployment> GetAsync(string model, string alias, CancellationToken cancellationToken = default) =>
        registry.RunAsync(async connection =>
        {
            await connection.ExecuteScalarAsync<int?>(Command(DeploymentSql.RequireAlias, new { model, alias }, cancellationToken));
            return await ReadAsync(connection, model, alias, null, cancellationToken);
        }, cancellationToken);

    public Task<IReadOnlyList<DeploymentArm>> ReportAsync(string model, string alias, CancellationToken cancellationToken = default) =>
        registry.RunAsync<IReadOnlyList<DeploymentArm>>(async connection =>
        {
            var deployment = await GetAsync(model, alias, cancellationToken);
            var arms = (await connection.QueryAsync<DeploymentArm>(Command(DeploymentSql.Report, new { model, alias }, cancellationToken))).ToList();
            // An alias nothing was ever deployed through has no mad.deployments row: its champion serves every key.
            return arms.Count > 0 ? arms : [new DeploymentArm(Arms.Champion, deployment.Version, 100, 0, 0, null)];
        }, cancellationToken);

    public async Task<LegacyColumn> SetLegacyColumnAsync(string table, string? column, string? output = null, CancellationToken cancellationToken = default)
    {
        await registry.RunAsync(connection => connection.ExecuteAsync(Command(DeploymentSql.SetLegacyColumn, new { table, column, output }, cancellationToken)), cancellationToken);
        return await GetLegacyColumnAsync(table, cancellationToken);
    }

    public async Task<LegacyColumn> GetLegacyColumnAsync(string table, CancellationToken cancellationToken = default) =>
        await registry.RunAsync(connection => connection.QuerySingleOrDefaultAsync<LegacyColumn?>(Command(DeploymentSql.GetLegacyColumn, new { table }, cancellationToken)), cancellationToken)
        ?? await NoSuchTableAsync(table, cancellationToken);

    public async Task<IReadOnlyList<LegacyAgreement>> LegacyAgreementAsync(string table, CancellationToken cancellationToken = default)
    {
        await GetLegacyColumnAsync(table, cancellationToken); // a missing table is an error naming the tables, not an empty answer
        return await registry.RunAsync<IReadOnlyList<LegacyAgreement>>(async connection =>
            (await connection.QueryAsync<LegacyAgreement>(Command(DeploymentSql.LegacyAgreement, new { table }, cancellationToken))).ToList(), cancellationToken);
    }

    /// <summary>Throws the prediction tables' own NotFound, which names the tables that exist.</summary>
    private async Task<LegacyColumn> NoSuchTableAsync(string table, CancellationToken cancellationToken)
    {
        await new Jobs.PostgresPredictionTables(registry).GetAsync(table, cancellationToken);
        return new LegacyColumn(table, null, null); // created in between: it names no legacy column yet
    }

    public Task<Deployment?> DeploymentAtAsync(string model, string alias, DateTimeOffset at, CancellationToken cancellationToken = default) =>
        registry.RunAsync(async connection =>
        {
            await connection.ExecuteScalarAsync<int?>(Command(DeploymentSql.RequireAlias, new { model, alias }, cancellationToken));
            var row = await connection.QuerySingleAsync<AtRow>(Command(DeploymentSql.DeploymentAt, new { model, alias, at = at.UtcDateTime }, cancellationToken));
            return row.Version is { } version
                ? new Deployment(model, alias, version, row.CanaryVersion, row.CanaryPercent, null, null, null, row.ShadowVersion, row.ShadowPercent, row.Seed)
                : null;
        }, cancellationToken);

    public Task<IReadOnlyList<DeploymentChange>> HistoryAsync(string model, string alias, CancellationToken cancellationToken = default) =>
        registry.RunAsync<IReadOnlyList<DeploymentChange>>(async connection =>
        {
            await connection.ExecuteScalarAsync<int?>(Command(DeploymentSql.RequireAlias, new { model, alias }, cancellationToken));
            var rows = await connection.QueryAsync<ChangeRow>(Command(DeploymentSql.History, new { model, alias }, cancellationToken));
            return rows.Select(r => new DeploymentChange(r.Kind, r.Version, r.CanaryVersion, r.CanaryPercent, r.ShadowVersion, r.ShadowPercent,
                r.ChangedBy, new DateTimeOffset(r.ChangedAt, TimeSpan.Zero), r.Reason)).ToList();
        }, cancellationToken);

    /// <summary>Runs one change and reads the deployment it left, in one transaction.</summary>
    private Task<Deployment> ChangeAsync(string sql, object parameters, string model, string alias, CancellationToken cancellationToken) =>
        registry.RunAsync(async connection =>
        {
            await using var transaction = await connection.BeginTransactionAsync(cancellationToken);
            await connection.ExecuteScalarAsync(Command(sql, parameters, cancellationToken, transaction));
            var deployment = await ReadAsync(connection, model, alias, transaction, cancellationToken);
            await transaction.CommitAsync(cancellationToken);
            return deployment;
        }, cancellationToken);

    private static async Task<Deployment> ReadAsync(NpgsqlConnection connection, string model, string alias, NpgsqlTransaction? transaction, CancellationToken cancellationToken)
    {
        var row = await connection.QuerySingleAsync<DeploymentRow>(Command(DeploymentSql.Get, new { model, alias }, cancellationToken, transaction));
        return new Deployment(row.Model, row.Alias, row.Version, row.CanaryVersion, row.CanaryPercent, row.Steps, row.StepEvery,
            row.NextStepAt is { } next ? new DateTimeOffset(next, TimeSpan.Zero) : null, row.ShadowVersion, row.ShadowPercent, row.Seed);
    }

    private static CommandDefinition Command(string sql, object? parameters, CancellationToken cancellationToken, NpgsqlTransaction? transaction = null) =>
        new(sql, parameters, transaction, cancellationToken: cancellationToken);

    private sealed class AtRow
    {
        public int? Version { get; set; }
        public int? CanaryVersion { get; set; }
        public double? CanaryPercent { get; set; }
        public int? ShadowVersion { get; set; }
        public double? ShadowPercent { get; set; }
        public long? Seed { get; set; }
    }

    private sealed class DeploymentRow
    {
        public string Model { get; set; } = "";
        public string Alias { get; set; } = "";
        public int Version { get; set; }
        public int? CanaryVersion { get; set; }
        public double? CanaryPercent { get; set; }
        public double[]? Steps { get; set; }
        public TimeSpan? StepEvery { get; set; }
        public DateTime? NextStepAt { get; set; }
        public int? ShadowVersion { get; set; }
        public double? ShadowPercent { get; set; }
        public long? Seed { get; set; }
    }

    private sealed class ChangeRow
    {
        public string Kind { get; set; } = "";
        public int Version { get; set; }
        public int? CanaryVersion { get; set; }
        public double? CanaryPercent { get; set; }
        public int? ShadowVersion { get; set; }
        public double? ShadowPercent { get; set; }
        public string ChangedBy { get; set; } = "";
        public DateTime ChangedAt { get; set; }
        public string? Reason { get; set; }
    }
}

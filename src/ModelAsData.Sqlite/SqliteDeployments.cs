using System.Globalization;
using System.Security.Cryptography;
using Dapper;
using ModelAsData.Core;
using ModelAsData.Core.Deployments;
using ModelAsData.Core.Registry;

namespace ModelAsData.Sqlite;

/// <summary>
/// Deployments in the embedded store, by the rules of PostgreSQL's mad functions (sql/postgres/017_deployments.sql),
/// with the same messages where they apply. The alias (mad_aliases) is the champion, moved through the registry so its
/// history stays whole. Rolling steps need sidecars to advance them: on SQLite a canary has a fixed percent.
/// Used from one thread at a time, as its registry; does not own it.
/// </summary>
public sealed class SqliteDeployments(SqliteModelRegistry registry) : IDeployments
{
    private Microsoft.Data.Sqlite.SqliteConnection Connection => registry.Connection;

    public async Task<Deployment> DeployAsync(string model, string alias, int version, string? reason = null, CancellationToken cancellationToken = default)
    {
        await RequireReadyAsync(model, version, "the version served", cancellationToken);
        await registry.RequireAliasTargetAsync(model, alias, version, cancellationToken);
        using (var transaction = Connection.BeginTransaction(deferred: false))
        {
            await registry.MoveInAsync(model, alias, version, reason ?? "mad deploy", transaction, cancellationToken);
            await Connection.ExecuteAsync(new CommandDefinition(SqliteDeploymentSql.EndCanary, new { model, alias, by = Environment.UserName, at = SqliteTime.Now() }, transaction,
                cancellationToken: cancellationToken));
            await RecordAsync(model, alias, "deploy", reason, transaction, cancellationToken);
            await transaction.CommitAsync(cancellationToken);
        }

        return await GetAsync(model, alias, cancellationToken);
    }

    public async Task<Deployment> DeployCanaryAsync(string model, string alias, int version, double? percent, IReadOnlyList<double>? steps = null,
        TimeSpan? stepEvery = null, string? reason = null, CancellationToken cancellationToken = default)
    {
        if (steps is not null || stepEvery is not null)
        {
            throw new ModelAsDataException(ErrorCode.InvalidArgument,
                "Rolling steps are advanced by sidecars (mad serve), which only PostgreSQL has: on SQLite give a fixed --percent, and raise it with mad deploy abort + canary, or promote.");
        }

        var current = await GetAsync(model, alias, cancellationToken);
        await RequireReadyAsync(model, version, "a canary", cancellationToken);
        if (version == current.Version)
        {
            throw new ModelAsDataException(ErrorCode.InvalidArgument, $"{model}@{alias} already serves version {version} to every key; a canary is another version.");
        }

        await RequireSameColumnsAsync(model, current.Version, version, "a canary", cancellationToken);
        if (current.CanaryVersion is { } running)
        {
            throw new ModelAsDataException(ErrorCode.Conflict,
                $"{model}@{alias} already runs a canary: version {running} at {current.CanaryPercent?.ToString(CultureInfo.InvariantCulture)} % beside version {current.Version}. End it first: mad deploy promote {model} {alias}, or mad deploy abort {model} {alias}.");
        }

        RequirePercent(percent, $"The canary's percent {percent?.ToString(CultureInfo.InvariantCulture) ?? "NULL"} is outside (0, 100]: give the percent of keys that get version {version} (e.g. --percent 10).");
        using (var transaction = Connection.BeginTransaction(deferred: false))
        {
            await Connection.ExecuteAsync(new CommandDefinition(SqliteDeploymentSql.UpsertCanary,
                new { model, alias, seed = NewSeed(), version, percent, by = Environment.UserName, at = SqliteTime.Now() }, transaction, cancellationToken: cancellationToken));
            await RecordAsync(model, alias, "canary", reason, transaction, cancellationToken);
            await transaction.CommitAsync(cancellationToken);
        }

        return await GetAsync(model, alias, cancellationToken);
    }

    public async Task<Deployment> DeployShadowAsync(string model, string alias, int version, double percent = 100, string? reason = null, CancellationToken cancellationToken = default)
    {
        var current = await GetAsync(model, alias, cancellationToken);
        await RequireReadyAsync(model, version, "a shadow", cancellationToken);
        if (version == current.Version)
        {
            throw new ModelAsDataException(ErrorCode.InvalidArgument, $"{model}@{alias} serves version {version} already; a shadow is another version, scored beside it.");
        }

        await RequireSameColumnsAsync(model, current.Version, version, "a shadow", cancellationToken);
        RequirePercent(percent, $"The shadow's percent {percent.ToString(CultureInfo.InvariantCulture)} is outside (0, 100]: give the percent of keys scored by version {version} as well (100: all).");
        using (var transaction = Connection.BeginTransaction(deferred: false))
        {
            await Connection.ExecuteAsync(new CommandDefinition(SqliteDeploymentSql.UpsertShadow,
                new { model, alias, seed = NewSeed(), version, percent, by = Environment.UserName, at = SqliteTime.Now() }, transaction, cancellationToken: cancellationToken));
            await RecordAsync(model, alias, "shadow", reason, transaction, cancellationToken);
            await transaction.CommitAsync(cancellationToken);
        }

        return await GetAsync(model, alias, cancellationToken);
    }

    public async Task<Deployment> PromoteAsync(string model, string alias, string? reason = null, CancellationToken cancellationToken = default)
    {
        var current = await GetAsync(model, alias, cancellationToken);
        if (current.CanaryVersion is not { } canary)
        {
            throw new ModelAsDataException(ErrorCode.Conflict,
                $"{model}@{alias} runs no canary to promote: it serves version {current.Version} to every key. Start one with: mad deploy {model} {alias} --canary VERSION --percent 10");
        }

        await registry.RequireAliasTargetAsync(model, alias, canary, cancellationToken);
        // 025: the drift gate judges the canary's one step here (no rolling steps without sidecars). A failure ends
        // the canary as PostgreSQL's failed gates do (history kind 'gate', the reason naming the gate), then refuses.
        if (await SqliteDriftGate.FailureAsync(registry, model, alias, canary, cancellationToken) is { } failure)
        {
            var why = $"gate drift failed: {failure} (mad deploy promote)";
            using (var ending = Connection.BeginTransaction(deferred: false))
            {
                // Judged before the write lock: end only the canary judged, not one another process started since.
                var still = await Connection.QuerySingleOrDefaultAsync<Row>(new CommandDefinition(SqliteDeploymentSql.Get, new { model, alias }, ending,
                    cancellationToken: cancellationToken));
                if (still?.ToDeployment() is not { } now || now.CanaryVersion != canary || now.Seed != current.Seed)
                {
                    throw new ModelAsDataException(ErrorCode.Conflict,
                        $"{model}@{alias} changed while its canary was judged (another deploy, promote or abort); nothing was changed here. See it with: mad deploy status {model} {alias}");
                }

                await Connection.ExecuteAsync(new CommandDefinition(SqliteDeploymentSql.EndCanary, new { model, alias, by = Environment.UserName, at = SqliteTime.Now() }, ending,
                    cancellationToken: cancellationToken));
                await RecordAsync(model, alias, "gate", why, ending, cancellationToken);
                await ending.CommitAsync(cancellationToken);
            }

            throw new ModelAsDataException(ErrorCode.Conflict,
                $"{model}@{alias} was not promoted: {why}. The canary has ended and every key gets version {current.Version} again. " +
                $"Look at the drift with: mad monitor drift TABLE --since ... ; to deploy version {canary} anyway: mad deploy {model} {alias} --version {canary}");
        }

        using (var transaction = Connection.BeginTransaction(deferred: false))
        {
            await registry.MoveInAsync(model, alias, canary, reason ?? "promoted", transaction, cancellationToken);
            await Connection.ExecuteAsync(new CommandDefinition(SqliteDeploymentSql.EndCanary, new { model, alias, by = Environment.UserName, at = SqliteTime.Now() }, transaction,
                cancellationToken: cancellationToken));
            await RecordAsync(model, alias, "promote", reason ?? "promoted", transaction, cancellationToken);
            await transaction.CommitAsync(cancellationToken);
        }

        return await GetAsync(model, alias, cancellationToken);
    }

    public async Task<Deployment> AbortAsync(string model, string alias, string? reason = null, CancellationToken cancellationToken = default)
    {
        var current = await GetAsync(model, alias, cancellationToken);
        if (current.CanaryVersion is null && current.ShadowVersion is null)
        {
            throw new ModelAsDataException(ErrorCode.Conflict,
                $"{model}@{alias} runs no canary or shadow to abort: it serves version {current.Version} to every key. To point the alias back: mad models rollback {model} {alias}");
        }

        using (var transaction = Connection.BeginTransaction(deferred: false))
        {
            await Connection.ExecuteAsync(new CommandDefinition(SqliteDeploymentSql.EndAll, new { model, alias, by = Environment.UserName, at = SqliteTime.Now() }, transaction,
                cancellationToken: cancellationToken));
            await RecordAsync(model, alias, "abort", reason ?? "aborted", transaction, cancellationToken);
            await transaction.CommitAsync(cancellationToken);
        }

        return await GetAsync(model, alias, cancellationToken);
    }

    public async Task<Deployment> GetAsync(string model, string alias, CancellationToken cancellationToken = default)
    {
        Names.Validate(model, "model");
        Names.Validate(alias, "alias");
        var row = await Connection.QuerySingleOrDefaultAsync<Row>(new CommandDefinition(SqliteDeploymentSql.Get, new { model, alias }, cancellationToken: cancellationToken));
        if (row is null)
        {
            var aliases = await registry.AliasesAsync(model, cancellationToken); // a missing model throws, naming the models
            throw new ModelAsDataException(ErrorCode.NotFound,
                $"Model '{model}' has no alias '{alias}'; {(aliases.Count == 0 ? "it has no aliases" : "its aliases are " + string.Join(", ", aliases.Select(a => $"{a.Key} -> {a.Value}")))}. Deploy a first version with: mad deploy {model} {alias} --version VERSION");
        }

        return row.ToDeployment();
    }

    /// <summary>Per arm, the rows of the prediction tables served through the alias (bound to 'model' or 'model@alias').</summary>
    public async Task<IReadOnlyList<DeploymentArm>> ReportAsync(string model, string alias, CancellationToken cancellationToken = default)
    {
        var deployment = await GetAsync(model, alias, cancellationToken);
        var counts = new Dictionary<(string Arm, int Version), (long Rows, long Failed)>();
        var agreement = new ShadowAgreement();
        var legacy = new LegacySums();
        var canaryAgreement = new CanaryAgreementTotals();
        string? shadowError = null;
        var tables = await Connection.QueryAsync<string>(new CommandDefinition(SqliteDeploymentSql.TablesServedThrough,
            new { model, reference = $"{model}@{alias}", bare = alias == "production" }, cancellationToken: cancellationToken));
        foreach (var name in tables)
        {
            var output = SqliteDatabase.Quote(SqlitePredictionTables.OutputTableOf(name));
            legacy.Add(await LegacyAgreementAsync(name, cancellationToken)); // 019: each arm's agreement with the legacy column, if named
            if (deployment.CanaryVersion is { } canaryVersion)
            {
                await canaryAgreement.AddAsync(Connection, name, deployment.Seed, canaryVersion, cancellationToken); // 019_m
            }

            if (!await SqlitePredictionTables.HasArmAsync(Connection, name, cancellationToken))
            {
                continue; // not refreshed since 004: every row is a champion's, counted once refreshed
            }

            foreach (var (arm, version, rows, failed) in await Connection.QueryAsync<(string, long, long, long)>(new CommandDefinition(
                $"SELECT arm, model_version, count(*), count(error) FROM {output} GROUP BY arm, model_version", cancellationToken: cancellationToken)))
            {
                var key = (arm, (int)version);
                counts[key] = counts.TryGetValue(key, out var c) ? (c.Rows + rows, c.Failed + failed) : (rows, failed);
            }

            // The shadow arm's rows are in the shadow table (009), written by the last refresh.
            var shadowTable = SqlitePredictionTables.ShadowTableOf(name);
            if (await Connection.ExecuteScalarAsync<long>(new CommandDefinition("SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = @shadowTable",
                    new { shadowTable }, cancellationToken: cancellationToken)) > 0)
            {
                foreach (var (version, rows, failed) in await Connection.QueryAsync<(long, long, long)>(new CommandDefinition(
                    $"SELECT shadow_version, count(*), count(error) FROM {SqliteDatabase.Quote(shadowTable)} GROUP BY shadow_version", cancellationToken: cancellationToken)))
                {
                    var key = (Arms.Shadow, (int)version);
                    counts[key] = counts.TryGetValue(key, out var c) ? (c.Rows + rows, c.Failed + failed) : (rows, failed);
                }

                await agreement.AddAsync(Connection, await new SqlitePredictionTables(registry).GetAsync(name, cancellationToken), cancellationToken);
                shadowError ??= await Connection.ExecuteScalarAsync<string?>(new CommandDefinition(
                    "SELECT shadow_error FROM mad_prediction_tables WHERE name = @name", new { name }, cancellationToken: cancellationToken));
            }
        }

        DeploymentArm Arm(string arm, int version, double percent)
        {
            var (rows, failed) = counts.GetValueOrDefault((arm, version));
            var (legacyEqual, legacyDifference) = legacy.Of(arm, version);
            return new DeploymentArm(arm, version, percent, rows, failed, rows > 0 ? failed / (double)rows : null,
                LegacyShareEqual: legacyEqual, LegacyMeanAbsoluteDifference: legacyDifference);
        }

        var arms = new List<DeploymentArm> { Arm(Arms.Champion, deployment.Version, 100 - (deployment.CanaryPercent ?? 0)) };
        if (deployment.CanaryVersion is { } canary)
        {
            arms.Add(Arm(Arms.Canary, canary, deployment.CanaryPercent!.Value) with
            {
                ShareEqual = canaryAgreement.ShareEqual, MeanAbsoluteDifference = canaryAgreement.MeanAbsoluteDifference, RowsCompared = canaryAgreement.RowsCompared,
            });
        }

        if (deployment.ShadowVersion is { } shadow)
        {
            var (equal, difference) = agreement.Of(shadow);
            arms.Add(Arm(Arms.Shadow, shadow, deployment.ShadowPercent!.Value) with
            {
                ShareEqual = equal, MeanAbsoluteDifference = difference, ShadowError = shadowError, RowsCompared = agreement.RowsOf(shadow),
            });
        }

        return arms;
    }

    public async Task<LegacyColumn> SetLegacyColumnAsync(string table, string? column, string? output = null, CancellationToken cancellationToken = default) =>
        await SqliteLegacyComparison.SetAsync(Connection, await new SqlitePredictionTables(registry).GetAsync(table, cancellationToken), column, output, cancellationToken);

    public async Task<LegacyColumn> GetLegacyColumnAsync(string table, CancellationToken cancellationToken = default) =>
        await SqliteLegacyComparison.GetAsync(Connection, await new SqlitePredictionTables(registry).GetAsync(table, cancellationToken), cancellationToken);

    public async Task<IReadOnlyList<LegacyAgreement>> LegacyAgreementAsync(string table, CancellationToken cancellationToken = default) =>
        await SqliteLegacyComparison.AgreementAsync(Connection, await new SqlitePredictionTables(registry).GetAsync(table, cancellationToken), cancellationToken);

    public async Task<Deployment?> DeploymentAtAsync(string model, string alias, DateTimeOffset at, CancellationToken cancellationToken = default)
    {
        await GetAsync(model, alias, cancellationToken); // NotFound names the aliases
        if (await registry.AliasAtAsync(model, alias, at, cancellationToken) is not { } version)
        {
            return null;
        }

        var change = await Connection.QuerySingleOrDefaultAsync<Row>(new CommandDefinition(SqliteDeploymentSql.ChangeAt,
            new { model, alias, at = SqliteTime.ToText(at) }, cancellationToken: cancellationToken));
        return new Deployment(model, alias, version, (int?)change?.CanaryVersion, change?.CanaryPercent, null, null, null,
            (int?)change?.ShadowVersion, change?.ShadowPercent, change?.Seed);
    }

    public async Task<IReadOnlyList<DeploymentChange>> HistoryAsync(string model, string alias, CancellationToken cancellationToken = default)
    {
        await GetAsync(model, alias, cancellationToken);
        var rows = await Connection.QueryAsync<ChangeRow>(new CommandDefinition(SqliteDeploymentSql.History, new { model, alias }, cancellationToken: cancellationToken));
        return rows.Select(r => new DeploymentChange(r.Kind, (int)r.Version, (int?)r.CanaryVersion, r.CanaryPercent, (int?)r.ShadowVersion, r.ShadowPercent,
            r.ChangedBy, SqliteTime.Parse(r.ChangedAt), r.Reason)).ToList();
    }

    /// <summary>The deployment a prediction table's model reference is served through, or null when it names a version or an alias-less model.</summary>
    internal async Task<Deployment?> ServingAsync(ModelReference reference, CancellationToken cancellationToken, Microsoft.Data.Sqlite.SqliteTransaction? transaction = null)
    {
        if (reference.Version is not null)
        {
            return null;
        }

        var row = await Connection.QuerySingleOrDefaultAsync<Row>(new CommandDefinition(SqliteDeploymentSql.Get,
            new { model = reference.Model, alias = reference.Alias ?? "production" }, transaction, cancellationToken: cancellationToken));
        return row?.ToDeployment();
    }

    /// <summary>The change's history row, with the state after it, in the change's transaction.</summary>
    private Task RecordAsync(string model, string alias, string kind, string? reason, Microsoft.Data.Sqlite.SqliteTransaction transaction, CancellationToken cancellationToken) =>
        Connection.ExecuteAsync(new CommandDefinition(SqliteDeploymentSql.Record,
            new { model, alias, kind, by = Environment.UserName, at = SqliteTime.Now(), reason }, transaction, cancellationToken: cancellationToken));

    private async Task RequireReadyAsync(string model, int version, string what, CancellationToken cancellationToken)
    {
        var found = await registry.ResolveAsync(new ModelReference(model, null, version), cancellationToken); // NotFound names the versions
        if (found.Status != VersionStatus.Ready)
        {
            throw SqliteRegistryMessages.NotReadyToDeploy(found, what, await registry.VersionStatusesAsync(model, cancellationToken));
        }
    }

    private async Task RequireSameColumnsAsync(string model, int champion, int other, string what, CancellationToken cancellationToken)
    {
        var a = (await registry.ResolveAsync(new ModelReference(model, null, champion), cancellationToken)).Signature!;
        var b = (await registry.ResolveAsync(new ModelReference(model, null, other), cancellationToken)).Signature!;
        var same = a.Inputs.Select(i => i.ToString()).SequenceEqual(b.Inputs.Select(i => i.ToString()))
            && a.Columns.Select(c => (c.Type, c.Output, c.Offset)).SequenceEqual(b.Columns.Select(c => (c.Type, c.Output, c.Offset)));
        if (!same)
        {
            throw new ModelAsDataException(ErrorCode.InvalidArgument,
                $"Version {other} of {model} cannot be {what} of version {champion}: it takes other inputs or decodes into columns ({string.Join(", ", b.Columns.Select(c => c.Name))}) that differ from version {champion}'s ({string.Join(", ", a.Columns.Select(c => c.Name))}).");
        }
    }

    private static void RequirePercent(double? percent, string message)
    {
        if (percent is not (> 0 and <= 100))
        {
            throw new ModelAsDataException(ErrorCode.InvalidArgument, message);
        }
    }

    private static long NewSeed() => RandomNumberGenerator.GetInt32(int.MaxValue) * 4_194_304L + RandomNumberGenerator.GetInt32(4_194_304);

    /// <summary>
    /// The shadow's agreement with the served rows of the same keys, over rows both scored without error, as
    /// PostgreSQL's mad.shadow_agreement defines it: the share of rows whose label columns (text, integer) all equal the
    /// served ones, and the mean absolute difference of the value columns (real), averaged over columns and rows;
    /// tables are weighted by the rows they compared.
    /// </summary>
    private sealed class ShadowAgreement
    {
        private readonly Dictionary<int, (long Labelled, double Equal, long Valued, double Difference)> _sums = [];

        public async Task AddAsync(Microsoft.Data.Sqlite.SqliteConnection connection, PredictionTable table, CancellationToken cancellationToken)
        {
            var labels = table.Columns.Where(c => c.Type is Core.Onnx.ColumnType.Text or Core.Onnx.ColumnType.Integer or Core.Onnx.ColumnType.Uint64)
                .Select(c => $"s.{SqliteDatabase.Quote(c.Name)} IS o.{SqliteDatabase.Quote(c.Name)}").ToList();
            var values = table.Columns.Where(c => c.Type == Core.Onnx.ColumnType.Real)
                .Select(c => $"abs(s.{SqliteDatabase.Quote(c.Name)} - o.{SqliteDatabase.Quote(c.Name)})").ToList();
            var keys = string.Join(" AND ", table.Key.Select(k => $"s.{SqliteDatabase.Quote(k)} = o.{SqliteDatabase.Quote(k)}"));
            var equal = labels.Count == 0 ? "NULL" : $"sum(CASE WHEN {string.Join(" AND ", labels)} THEN 1.0 ELSE 0.0 END)";
            var difference = values.Count == 0 ? "NULL" : $"sum(({string.Join(" + ", values)}) / {values.Count}.0)";
            var sql = $"SELECT s.shadow_version, count(*), {equal}, {difference} FROM {SqliteDatabase.Quote(SqlitePredictionTables.ShadowTableOf(table.Name))} s "
                + $"JOIN {SqliteDatabase.Quote(SqlitePredictionTables.OutputTableOf(table.Name))} o ON {keys} WHERE s.error IS NULL AND o.error IS NULL GROUP BY s.shadow_version";
            foreach (var (version, rows, equalSum, differenceSum) in await connection.QueryAsync<(long, long, double?, double?)>(new CommandDefinition(sql, cancellationToken: cancellationToken)))
            {
                var sums = _sums.GetValueOrDefault((int)version);
                _sums[(int)version] = (sums.Labelled + (equalSum is null ? 0 : rows), sums.Equal + (equalSum ?? 0),
                    sums.Valued + (differenceSum is null ? 0 : rows), sums.Difference + (differenceSum ?? 0));
            }
        }

        public long? RowsOf(int version) => _sums.TryGetValue(version, out var s) ? Math.Max(s.Labelled, s.Valued) : null;

        public (double? ShareEqual, double? MeanAbsoluteDifference) Of(int version) =>
            _sums.TryGetValue(version, out var s)
                ? (s.Labelled > 0 ? s.Equal / s.Labelled : null, s.Valued > 0 ? s.Difference / s.Valued : null)
                : (null, null);
    }

    /// <summary>
    /// The canary arm's agreement with the champion (019_m), from the sums the refreshes under this deployment (its seed)
    /// and canary version kept on each table served through it, as PostgreSQL's report adds up its jobs' (043_2): the
    /// share of compared rows whose labels all equal, and the summed absolute differences averaged over value outputs, per row.
    /// </summary>
    private sealed class CanaryAgreementTotals
    {
        private long _rows;
        private long _labelled;
        private long _equal;
        private long _valued;
        private double _difference;

        public async Task AddAsync(Microsoft.Data.Sqlite.SqliteConnection connection, string table, long? seed, int version, CancellationToken cancellationToken)
        {
            var sums = (await connection.QueryAsync<(long? Seed, long? Version, long? Rows, long? Equal, string? Differences)>(new CommandDefinition(
                SqliteTableSql.Agreement, new { name = table }, cancellationToken: cancellationToken))).Single();
            if (sums.Seed != seed || sums.Version != version || sums.Rows is not > 0)
            {
                return; // not refreshed under this canary yet
            }

            var rows = sums.Rows.Value;
            _rows += rows;
            if (sums.Equal is { } equal)
            {
                (_labelled, _equal) = (_labelled + rows, _equal + equal);
            }

            var differences = System.Text.Json.JsonSerializer.Deserialize<Dictionary<string, double>>(sums.Differences ?? "{}", s_json) ?? [];
            if (differences.Count > 0)
            {
                (_valued, _difference) = (_valued + rows, _difference + differences.Values.Sum() / differences.Count);
            }
        }

        public long? RowsCompared => _rows > 0 ? _rows : null;

        public double? ShareEqual => _labelled > 0 ? _equal / (double)_labelled : null;

        public double? MeanAbsoluteDifference => _valued > 0 ? _difference / _valued : null;

        private static readonly System.Text.Json.JsonSerializerOptions s_json = new()
        {
            NumberHandling = System.Text.Json.Serialization.JsonNumberHandling.AllowNamedFloatingPointLiterals,
        };
    }

    /// <summary>
    /// The report's legacy agreement per arm and version, as PostgreSQL's deployment_report weighs it: over the tables
    /// served through the alias, each table's share equal (or mean absolute difference) weighted by the rows it compared.
    /// </summary>
    private sealed class LegacySums
    {
        private readonly Dictionary<(string Arm, int Version), (long Labelled, double Equal, long Valued, double Difference)> _sums = [];

        public void Add(IReadOnlyList<LegacyAgreement> rows)
        {
            foreach (var r in rows)
            {
                var s = _sums.GetValueOrDefault((r.Arm, r.ModelVersion));
                _sums[(r.Arm, r.ModelVersion)] = (s.Labelled + (r.ShareEqual is null ? 0 : r.RowsCompared), s.Equal + (r.ShareEqual ?? 0) * r.RowsCompared,
                    s.Valued + (r.MeanAbsoluteDifference is null ? 0 : r.RowsCompared), s.Difference + (r.MeanAbsoluteDifference ?? 0) * r.RowsCompared);
            }
        }

        public (double? ShareEqual, double? MeanAbsoluteDifference) Of(string arm, int version) =>
            _sums.TryGetValue((arm, version), out var s)
                ? (s.Labelled > 0 ? s.Equal / s.Labelled : null, s.Valued > 0 ? s.Difference / s.Valued : null)
                : (null, null);
    }

    private sealed class Row
    {
        public string Model { get; set; } = "";
        public string Alias { get; set; } = "";
        public long Version { get; set; }
        public long? CanaryVersion { get; set; }
        public double? CanaryPercent { get; set; }
        public long? ShadowVersion { get; set; }
        public double? ShadowPercent { get; set; }
        public long? Seed { get; set; }

        public Deployment ToDeployment() => new(Model, Alias, (int)Version, (int?)CanaryVersion, CanaryPercent, null, null, null, (int?)ShadowVersion, ShadowPercent, Seed);
    }

    private sealed class ChangeRow
    {
        public string Kind { get; set; } = "";
        public long Version { get; set; }
        public long? CanaryVersion { get; set; }
        public double? CanaryPercent { get; set; }
        public long? ShadowVersion { get; set; }
        public double? ShadowPercent { get; set; }
        public string ChangedBy { get; set; } = "";
        public string ChangedAt { get; set; } = "";
        public string? Reason { get; set; }
    }
}

using Dapper;

namespace ModelAsData.IntegrationTests.Postgres;

public sealed class AliasTests(PostgresDatabase database) : RegistryTests(database)
{
    [Fact(Timeout = 90_000)]
    public async Task Set_and_rollback_keep_a_history_of_who_when_from_to_and_why()
    {
        var model = Sql.UniqueName("churn");
        for (var i = 0; i < 3; i++)
        {
            await Registry.PushReadyAsync(model);
        }

        var created = await Registry.SetAliasAsync(model, "production", 1, "first release", Ct);
        var moved = await Registry.SetAliasAsync(model, "production", 3, "better auc", Ct);
        var rolledBack = await Registry.RollbackAliasAsync(model, "production", Ct);
        var history = await Registry.AliasHistoryAsync(model, "production", Ct);

        Assert.Equal((null, 1, "first release"), (created.From, created.To, created.Reason));
        Assert.Equal((1, 3, "better auc"), ((int?)moved.From, moved.To, moved.Reason));
        Assert.Equal((3, 1), ((int?)rolledBack.From, rolledBack.To));
        Assert.Contains("rollback", rolledBack.Reason, StringComparison.Ordinal);
        Assert.Equal([rolledBack, moved, created], history);
        Assert.All(history, h => Assert.Equal(new NpgsqlConnectionStringBuilder(Database.ConnectionString).Username, h.MovedBy));
        Assert.True(history[0].MovedAt >= history[1].MovedAt && history[1].MovedAt >= history[2].MovedAt);
        Assert.Equal(1, (await Registry.AliasesAsync(model, Ct))["production"]);
        Assert.Equal(1, (await Registry.ResolveAsync(ModelReference.Parse(model), Ct)).Version);
    }

    [Fact(Timeout = 90_000)]
    public async Task Alias_at_answers_which_version_an_alias_pointed_at_in_the_past()
    {
        var model = Sql.UniqueName("churn");
        await Registry.PushReadyAsync(model);
        await Registry.PushReadyAsync(model);
        var first = await Registry.SetAliasAsync(model, "production", 1, cancellationToken: Ct);
        await Task.Delay(20, Ct);
        var second = await Registry.SetAliasAsync(model, "production", 2, cancellationToken: Ct);

        Assert.Null(await Registry.AliasAtAsync(model, "production", first.MovedAt.AddMilliseconds(-1), Ct));
        Assert.Equal(1, await Registry.AliasAtAsync(model, "production", first.MovedAt, Ct));
        Assert.Equal(1, await Registry.AliasAtAsync(model, "production", second.MovedAt.AddMilliseconds(-1), Ct));
        Assert.Equal(2, await Registry.AliasAtAsync(model, "production", second.MovedAt, Ct));
        Assert.Equal(2, await Database.DataSource.ScalarAsync<int>("SELECT mad.alias_at(@model, 'production', now())", new { model }));
    }

    [Fact(Timeout = 90_000)]
    public async Task An_alias_move_rolled_back_with_its_transaction_leaves_no_trace()
    {
        var model = Sql.UniqueName("churn");
        await Registry.PushReadyAsync(model);
        await Registry.PushReadyAsync(model);
        await Registry.SetAliasAsync(model, "production", 1, cancellationToken: Ct);

        await using (var connection = await Database.DataSource.OpenConnectionAsync(Ct))
        await using (var transaction = await connection.BeginTransactionAsync(Ct))
        {
            await connection.ExecuteAsync(new CommandDefinition("SELECT mad.set_alias(@model, 'production', 2)", new { model }, transaction, cancellationToken: Ct));
            await connection.ExecuteAsync(new CommandDefinition("SELECT mad.set_alias(@model, 'staging', 2)", new { model }, transaction, cancellationToken: Ct));
            Assert.Equal(2, await connection.ExecuteScalarAsync<int>(new CommandDefinition("SELECT mad.resolve(@model)", new { model }, transaction, cancellationToken: Ct)));
            await transaction.RollbackAsync(Ct);
        }

        Assert.Equal(new Dictionary<string, int> { ["production"] = 1 }, await Registry.AliasesAsync(model, Ct));
        Assert.Single(await Registry.AliasHistoryAsync(model, "production", Ct));
        Assert.Equal(0, await Database.DataSource.ScalarAsync<int>("SELECT count(*) FROM mad.alias_history WHERE model = @model AND alias = 'staging'", new { model }));
    }

    [Fact(Timeout = 90_000)]
    public async Task An_alias_cannot_point_at_a_pending_or_rejected_version()
    {
        var model = Sql.UniqueName("churn");
        await Registry.PushReadyAsync(model);
        await Registry.PushReadyAsync(model, TestModels.CustomOp);
        await Registry.PushAsync(model, TestModels.Bytes("skl2onnx_rf_iris.onnx"), [], Ct);

        var rejected = await Assert.ThrowsAsync<ModelAsDataException>(() => Registry.SetAliasAsync(model, "production", 2, cancellationToken: Ct));
        var pending = await Assert.ThrowsAsync<ModelAsDataException>(() => Registry.SetAliasAsync(model, "production", 3, cancellationToken: Ct));

        Assert.Equal(ErrorCode.NotReady, rejected.Code);
        Assert.Contains("rejected", rejected.Message, StringComparison.Ordinal);
        Assert.Contains("NegPos", rejected.Message, StringComparison.Ordinal);
        Assert.Equal(ErrorCode.NotReady, pending.Code);
        Assert.Contains("pending", pending.Message, StringComparison.Ordinal);
        Assert.Contains("mad serve", pending.Message, StringComparison.Ordinal);
        Assert.Empty(await Registry.AliasesAsync(model, Ct));
    }

    [Fact(Timeout = 90_000)]
    public async Task Missing_models_versions_and_aliases_are_errors_that_name_what_exists()
    {
        var model = Sql.UniqueName("churn");
        await Registry.PushReadyAsync(model);
        await Registry.SetAliasAsync(model, "production", 1, cancellationToken: Ct);

        var noModel = await Assert.ThrowsAsync<ModelAsDataException>(() => Registry.ResolveAsync(ModelReference.Parse("nosuchmodel@production"), Ct));
        var noAlias = await Assert.ThrowsAsync<ModelAsDataException>(() => Registry.ResolveAsync(ModelReference.Parse($"{model}@staging"), Ct));
        var noVersion = await Assert.ThrowsAsync<ModelAsDataException>(() => Registry.SetAliasAsync(model, "staging", 7, cancellationToken: Ct));
        var noRollback = await Assert.ThrowsAsync<ModelAsDataException>(() => Registry.RollbackAliasAsync(model, "staging", Ct));
        var noBytes = await Assert.ThrowsAsync<ModelAsDataException>(() => Registry.LoadBytesAsync(model, 9, Ct));
        var noAliases = await Assert.ThrowsAsync<ModelAsDataException>(() => Registry.AliasesAsync("nosuchmodel", Ct));

        Assert.Equal(ErrorCode.NotFound, noModel.Code);
        Assert.Contains("Model 'nosuchmodel' does not exist", noModel.Message, StringComparison.Ordinal);
        Assert.Contains($"'{model}'", noModel.Message, StringComparison.Ordinal);
        Assert.Equal(ErrorCode.NotFound, noAlias.Code);
        Assert.Contains("no alias 'staging'", noAlias.Message, StringComparison.Ordinal);
        Assert.Contains("production -> 1", noAlias.Message, StringComparison.Ordinal);
        Assert.Equal(ErrorCode.NotFound, noVersion.Code);
        Assert.Contains("its versions are 1 (ready)", noVersion.Message, StringComparison.Ordinal);
        Assert.Equal(ErrorCode.NotFound, noRollback.Code);
        Assert.Equal(ErrorCode.NotFound, noBytes.Code);
        Assert.Contains("no version 9", noBytes.Message, StringComparison.Ordinal);
        Assert.Equal(ErrorCode.NotFound, noAliases.Code);
        Assert.Contains($"'{model}'", noAliases.Message, StringComparison.Ordinal);
    }

    [Fact(Timeout = 90_000)]
    public async Task Rolling_back_an_alias_that_never_moved_is_a_conflict_that_says_what_to_do()
    {
        var model = Sql.UniqueName("churn");
        await Registry.PushReadyAsync(model);
        await Registry.SetAliasAsync(model, "production", 1, cancellationToken: Ct);

        var error = await Assert.ThrowsAsync<ModelAsDataException>(() => Registry.RollbackAliasAsync(model, "production", Ct));

        Assert.Equal(ErrorCode.Conflict, error.Code);
        Assert.Contains("no previous version", error.Message, StringComparison.Ordinal);
        Assert.Contains("mad.set_alias", error.Message, StringComparison.Ordinal);
    }

    [Fact(Timeout = 90_000)]
    public async Task Setting_an_alias_to_where_it_already_points_records_no_move()
    {
        var model = Sql.UniqueName("churn");
        await Registry.PushReadyAsync(model);
        var first = await Registry.SetAliasAsync(model, "production", 1, cancellationToken: Ct);

        var again = await Registry.SetAliasAsync(model, "production", 1, cancellationToken: Ct);

        Assert.Equal(first, again);
        Assert.Single(await Registry.AliasHistoryAsync(model, "production", Ct));
    }
}

using ModelAsData.Postgres;

namespace ModelAsData.IntegrationTests.Postgres;

/// <summary>Login roles granted the group roles, connecting for real: EXECUTE grants decide what each may call.</summary>
public sealed class RoleTests(PostgresDatabase database) : DatabaseTests(database)
{
    [Fact(Timeout = 90_000)]
    public async Task A_mad_user_cannot_push_or_move_aliases_and_is_told_which_role_it_needs()
    {
        var model = Sql.UniqueName("churn");
        var admin = new PostgresModelRegistry(Database.DataSource);
        await admin.PushReadyAsync(model);
        await admin.PushReadyAsync(model);
        await admin.SetAliasAsync(model, "production", 1, cancellationToken: Ct);

        await using var login = await LoginAsync("mad_user");
        await using var user = await PostgresModelRegistry.OpenAsync(login.ConnectionString, Ct);
        var push = await Assert.ThrowsAsync<ModelAsDataException>(() => user.PushAsync(model, TestModels.Bytes("skl2onnx_logreg_iris.onnx"), [], Ct));
        var set = await Assert.ThrowsAsync<ModelAsDataException>(() => user.SetAliasAsync(model, "production", 2, cancellationToken: Ct));
        var rollback = await Assert.ThrowsAsync<ModelAsDataException>(() => user.RollbackAliasAsync(model, "production", Ct));
        var sql = await login.DataSource.FailsAsync("SELECT mad.push_model('sneaky', '\\x01')");
        var direct = await login.DataSource.FailsAsync("UPDATE mad.aliases SET version = 2");

        // EXECUTE grants are the gate: PostgreSQL refuses the call, and the client says which role does what.
        foreach (var (error, function) in new[] { (push, "push_model"), (set, "set_alias"), (rollback, "rollback_alias") })
        {
            Assert.Equal(ErrorCode.PermissionDenied, error.Code);
            Assert.Equal(PostgresErrorCodes.InsufficientPrivilege, Assert.IsType<PostgresException>(error.InnerException).SqlState);
            Assert.Contains($"permission denied for function {function}", error.Message, StringComparison.Ordinal);
            Assert.Contains("mad_admin (push models, move aliases", error.Message, StringComparison.Ordinal);
            Assert.Contains("docs/SECURITY.md", error.Message, StringComparison.Ordinal);
        }

        Assert.Equal(PostgresErrorCodes.InsufficientPrivilege, sql.SqlState);
        Assert.Equal(PostgresErrorCodes.InsufficientPrivilege, direct.SqlState);
        // Reading is what mad_user is for.
        Assert.Equal(1, (await user.ResolveAsync(ModelReference.Parse(model), Ct)).Version);
        Assert.Contains(await user.ListAsync(Ct), m => m.Model == model);
        Assert.Equal(1, (await admin.AliasesAsync(model, Ct))["production"]);
    }

    [Fact(Timeout = 90_000)]
    public async Task A_mad_admin_login_can_push_and_move_aliases_and_is_recorded_as_the_author()
    {
        var model = Sql.UniqueName("churn");
        await using var login = await LoginAsync("mad_admin");
        await using var admin = await PostgresModelRegistry.OpenAsync(login.ConnectionString, Ct);

        var pushed = await admin.PushAsync(model, TestModels.Bytes("skl2onnx_logreg_iris.onnx"), [], Ct);
        await new PostgresModelRegistry(Database.DataSource).PushReadyAsync(Sql.UniqueName("other")); // validates the pending version too
        var move = await admin.SetAliasAsync(model, "production", pushed.Version, cancellationToken: Ct);

        Assert.Equal(login.Name, pushed.CreatedBy);
        Assert.Equal(login.Name, move.MovedBy);
    }

    [Fact(Timeout = 90_000)]
    public async Task Only_a_sidecar_may_mark_versions()
    {
        var model = Sql.UniqueName("churn");
        await new PostgresModelRegistry(Database.DataSource).PushAsync(model, TestModels.Bytes("skl2onnx_logreg_iris.onnx"), [], Ct);
        await using var login = await LoginAsync("mad_admin");

        var error = await login.DataSource.FailsAsync("SELECT mad.mark_version(@model, 1, 'ready', NULL, '{}')", new { model });

        Assert.Equal(PostgresErrorCodes.InsufficientPrivilege, error.SqlState);
        Assert.Contains("permission denied for function mark_version", error.MessageText, StringComparison.Ordinal);
    }

    [Fact(Timeout = 90_000)]
    public async Task A_sidecar_logged_in_with_only_mad_sidecar_validates_versions()
    {
        var registry = new PostgresModelRegistry(Database.DataSource);
        await using var login = await LoginAsync("mad_sidecar");
        await using var sidecar = await RunningSidecar.StartAsync(login.ConnectionString);

        var pushed = await registry.PushAsync(Sql.UniqueName("least"), TestModels.Bytes("skl2onnx_rf_iris.onnx"), [], Ct);
        var validated = await registry.WaitForValidationAsync(pushed.Model, pushed.Version, TimeSpan.FromSeconds(20), Ct);

        Assert.Equal(Core.Registry.VersionStatus.Ready, validated.Status);
        // Registration and validation start together: the version may be ready before the sidecar's row is written.
        var registeredAs = await Eventually.WaitForAsync(
            () => Database.DataSource.ScalarAsync<string?>("SELECT login FROM mad.sidecars WHERE id = @id", new { id = sidecar.Options.SidecarId }),
            l => l is not null, "the sidecar to register", TimeSpan.FromSeconds(10));
        Assert.Equal(login.Name, registeredAs);
    }

    private async Task<Login> LoginAsync(string groupRole)
    {
        var name = Sql.UniqueName("login");
        const string password = "test-only";
        await Database.DataSource.ExecuteAsync($"CREATE ROLE {name} LOGIN PASSWORD '{password}' IN ROLE {groupRole}");
        return new Login(Database, name, Database.ConnectionStringFor(name, password));
    }

    /// <summary>A throwaway LOGIN role, dropped on dispose.</summary>
    private sealed class Login(PostgresDatabase database, string name, string connectionString) : IAsyncDisposable
    {
        public string Name => name;

        public string ConnectionString => connectionString;

        public NpgsqlDataSource DataSource { get; } = PostgresDataSource.Create(connectionString);

        public async ValueTask DisposeAsync()
        {
            await DataSource.DisposeAsync();
            NpgsqlConnection.ClearAllPools();
            await database.DataSource.ExecuteAsync($"DROP ROLE IF EXISTS {name}");
        }
    }
}

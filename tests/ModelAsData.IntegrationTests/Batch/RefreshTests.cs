using ModelAsData.Sidecar;

namespace ModelAsData.IntegrationTests.Batch;

/// <summary>Create, refresh and JOIN, with an in-process sidecar woken by NOTIFY.</summary>
public sealed class RefreshTests(PostgresDatabase database) : DatabaseTests(database)
{
    [Fact(Timeout = 60_000)]
    public async Task Refresh_gives_one_prediction_per_source_row_that_a_join_finds_with_its_model_version()
    {
        await using var sidecar = await RunningSidecar.StartAsync(Database.ConnectionString);
        var (model, tables) = await BatchTables.ReadyModelAsync(Database);
        var source = await BatchTables.CreateFlowersAsync(Database.DataSource, 5_000);
        var name = Sql.UniqueName("scores");

        var created = await BatchTables.CreateAsync(tables, name, source, model);
        var job = await tables.StartRefreshAsync(name, Ct);
        var done = await BatchTables.WaitAsync(tables, job);

        Assert.Equal("mad_out." + name, created.OutputTable);
        Assert.Equal(["label", "probability_0", "probability_1", "probability_2"], created.Columns.Select(c => c.Name));
        Assert.Equal("done", done.State);
        Assert.Equal(5_000, done.RowsDone);
        Assert.Equal(0, done.RowsFailed);
        await BatchTables.AssertOnePredictionPerRowAsync(Database.DataSource, source, name);
        var joined = await Database.DataSource.QueryAsync<(long Id, long Label, float P0, int Version, string? Error)>(
            $"SELECT s.id, p.label, p.probability_0, p.model_version, p.error FROM public.{source} s JOIN mad_out.{name} p USING (id) ORDER BY s.id LIMIT 3");
        Assert.All(joined, r => Assert.Equal(1, r.Version));
        Assert.All(joined, r => Assert.Null(r.Error));
        Assert.All(joined, r => Assert.InRange(r.Label, 0, 2));
        var types = await Database.DataSource.QueryAsync<string>(
            "SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = @t::regclass AND attnum > 0 ORDER BY attnum", new { t = $"mad_out.{name}" });
        Assert.Equal(["bigint", "bigint", "real", "real", "real", "integer", "timestamp with time zone", "text", "text"], types); // the last: arm (017)
        var table = await tables.GetAsync(name, Ct);
        Assert.Equal(1, table.RefreshedVersion);
        Assert.Equal(5_000, table.RowsScored);
    }

    [Fact(Timeout = 60_000)]
    public async Task Moving_the_alias_and_refreshing_rescores_with_the_new_version_and_drops_deleted_rows()
    {
        await using var sidecar = await RunningSidecar.StartAsync(Database.ConnectionString);
        var (model, tables, registry) = await BatchTables.TwoReadyVersionsAsync(Database);
        var source = await BatchTables.CreateFlowersAsync(Database.DataSource, 2_000);
        var name = Sql.UniqueName("scores");
        await BatchTables.CreateAsync(tables, name, source, model);

        var first = await tables.RefreshAsync(name, cancellationToken: Ct);
        await registry.SetAliasAsync(model, "production", 2, cancellationToken: Ct);
        await Database.DataSource.ExecuteAsync($"DELETE FROM public.{source} WHERE id > 1500; INSERT INTO public.{source} VALUES (9999, 5.1, 3.5, 1.4, 0.2)");
        var again = await tables.RefreshAsync(name, cancellationToken: Ct);

        Assert.Equal(1, first.Version.Version);
        Assert.Equal(2, again.Version.Version);
        Assert.Equal(1_501, again.Rows);
        await BatchTables.AssertOnePredictionPerRowAsync(Database.DataSource, source, name);
        Assert.Equal([2], await Database.DataSource.QueryAsync<int>($"SELECT DISTINCT model_version FROM mad_out.{name}"));
    }

    [Fact(Timeout = 60_000)]
    public async Task A_row_that_cannot_be_converted_gets_its_error_and_the_rest_of_its_batch_is_scored()
    {
        await using var sidecar = await RunningSidecar.StartAsync(Database.ConnectionString);
        var (model, tables) = await BatchTables.ReadyModelAsync(Database);
        var source = Sql.UniqueName("messy");
        await Database.DataSource.ExecuteAsync($"""
            CREATE TABLE public.{source} (id bigint PRIMARY KEY, sepal_length real, sepal_width text, petal_length real, petal_width real);
            INSERT INTO public.{source} SELECT g, 5.1, '3.5', 1.4, 0.2 FROM generate_series(1, 100) g;
            UPDATE public.{source} SET sepal_width = 'abc' WHERE id = 7;
            UPDATE public.{source} SET sepal_length = NULL WHERE id = 42;
            """);
        var name = Sql.UniqueName("scores");
        await BatchTables.CreateAsync(tables, name, source, model);

        var result = await tables.RefreshAsync(name, cancellationToken: Ct);

        Assert.Equal(100, result.Rows);
        Assert.Equal(2, result.Failed);
        var rows = await Database.DataSource.QueryAsync<(long Id, long? Label, string? Error)>($"SELECT id, label, error FROM mad_out.{name} WHERE error IS NOT NULL OR id = 8 ORDER BY id");
        Assert.Equal([7L, 8L, 42L], rows.Select(r => r.Id));
        Assert.Null(rows[0].Label);
        Assert.Contains("column sepal_width", rows[0].Error, StringComparison.Ordinal);
        Assert.Contains("'abc'", rows[0].Error, StringComparison.Ordinal);
        Assert.Equal(0L, rows[1].Label);
        Assert.Null(rows[1].Error);
        Assert.Contains("column sepal_length: null", rows[2].Error, StringComparison.Ordinal);
    }

    [Fact(Timeout = 60_000)]
    public async Task A_key_that_repeats_in_the_source_fails_the_job_and_keeps_the_previous_predictions()
    {
        await using var sidecar = await RunningSidecar.StartAsync(Database.ConnectionString);
        var (model, tables) = await BatchTables.ReadyModelAsync(Database);
        var source = Sql.UniqueName("nokey");
        await Database.DataSource.ExecuteAsync($"""
            CREATE TABLE public.{source} (id bigint, sepal_length real, sepal_width real, petal_length real, petal_width real);
            INSERT INTO public.{source} SELECT g, 5.1, 3.5, 1.4, 0.2 FROM generate_series(1, 100) g;
            """);
        var name = Sql.UniqueName("scores");
        await BatchTables.CreateAsync(tables, name, source, model);
        await tables.RefreshAsync(name, cancellationToken: Ct);
        await Database.DataSource.ExecuteAsync($"INSERT INTO public.{source} VALUES (42, 5.0, 3.0, 1.0, 0.1)");

        var failed = await Assert.ThrowsAsync<ModelAsDataException>(() => tables.RefreshAsync(name, cancellationToken: Ct));

        Assert.Equal(ErrorCode.Conflict, failed.Code);
        Assert.Contains("not unique or has NULLs", failed.Message, StringComparison.Ordinal);
        Assert.Equal(100, await Database.DataSource.ScalarAsync<long>($"SELECT count(*) FROM mad_out.{name}"));
        Assert.Equal(1, await Database.DataSource.ScalarAsync<long>(
            "SELECT count(*) FROM mad.tasks t JOIN mad.jobs j ON j.id = t.job_id WHERE j.prediction_table = @name AND j.state = 'failed' AND t.attempts = 1", new { name }));
    }

    [Fact(Timeout = 60_000)]
    public async Task Create_names_the_missing_column_and_refuses_an_existing_name()
    {
        var (model, tables) = await BatchTables.ReadyModelAsync(Database);
        var source = await BatchTables.CreateFlowersAsync(Database.DataSource, 10);
        var name = Sql.UniqueName("scores");

        var unmapped = await Assert.ThrowsAsync<ModelAsDataException>(() => tables.CreateAsync(new(name, source, ["id"], model, null), Ct));
        var wrongColumn = await Assert.ThrowsAsync<ModelAsDataException>(() => tables.CreateAsync(
            new(name, source, ["id"], model, FeatureMapping.Parse("""{"float_input": ["sepal_length", "sepal_width", "petal_length", "nope"]}""")), Ct));
        var noTable = await Assert.ThrowsAsync<ModelAsDataException>(() => tables.CreateAsync(new(name, "no_such_table", ["id"], model, null), Ct));
        await BatchTables.CreateAsync(tables, name, source, model);
        var twice = await Assert.ThrowsAsync<ModelAsDataException>(() => BatchTables.CreateAsync(tables, name, source, model));

        Assert.Equal(ErrorCode.InvalidArgument, unmapped.Code);
        Assert.Contains("has no column 'float_input'", unmapped.Message, StringComparison.Ordinal);
        Assert.Contains("Columns: id, sepal_length", unmapped.Message, StringComparison.Ordinal);
        Assert.Contains("mapped to column 'nope'", wrongColumn.Message, StringComparison.Ordinal);
        Assert.Equal(ErrorCode.NotFound, noTable.Code);
        Assert.Equal(ErrorCode.Conflict, twice.Code);
    }

    [Fact(Timeout = 60_000)]
    public async Task Names_that_try_sql_injection_are_refused_or_quoted()
    {
        await using var sidecar = await RunningSidecar.StartAsync(Database.ConnectionString);
        var (model, tables) = await BatchTables.ReadyModelAsync(Database);
        var source = Sql.UniqueName("evil");
        const string key = "k\"); DROP TABLE victims; --";
        await Database.DataSource.ExecuteAsync($"""
            CREATE TABLE victims (id int);
            CREATE TABLE public.{source} ("{key.Replace("\"", "\"\"", StringComparison.Ordinal)}" text PRIMARY KEY, "a'b" real, sepal_width real, petal_length real, petal_width real);
            INSERT INTO public.{source} SELECT 'row ''' || g, 5.1, 3.5, 1.4, 0.2 FROM generate_series(1, 50) g;
            """);

        var badName = await Database.DataSource.FailsAsync("SELECT mad.create_prediction_table('x; DROP TABLE victims', @source::regclass, '{id}', @model)", new { source, model });
        var badSource = await Assert.ThrowsAsync<ModelAsDataException>(() => tables.CreateAsync(new("ok_name", $"{source}; DROP TABLE victims", [key], model, null), Ct));
        var badKey = await Assert.ThrowsAsync<ModelAsDataException>(() => tables.CreateAsync(new("ok_name", source, ["id) ; DROP TABLE victims; --"], model, null), Ct));
        var name = Sql.UniqueName("scores");
        await tables.CreateAsync(new(name, source, [key], model,
            FeatureMapping.Parse("""{"float_input": ["a'b", "sepal_width", "petal_length", "petal_width"]}""")), Ct);
        var result = await tables.RefreshAsync(name, cancellationToken: Ct);

        Assert.Equal(Npgsql.PostgresErrorCodes.InvalidName, badName.SqlState);
        Assert.Contains(badSource.Code, new[] { ErrorCode.NotFound, ErrorCode.InvalidName });
        Assert.Contains("has no column", badKey.Message, StringComparison.Ordinal);
        Assert.Equal(50, result.Rows);
        Assert.Equal(0, result.Failed);
        Assert.Equal(50, await Database.DataSource.ScalarAsync<long>($"SELECT count(*) FROM public.{source} s JOIN mad_out.{name} p USING (\"{key.Replace("\"", "\"\"", StringComparison.Ordinal)}\")"));
        Assert.Equal(0, await Database.DataSource.ScalarAsync<long>("SELECT count(*) FROM victims"));
    }

    [Fact(Timeout = 60_000)]
    public async Task A_mad_user_cannot_create_but_refreshes_its_own_table_only_while_it_may_select_the_source()
    {
        await using var sidecar = await RunningSidecar.StartAsync(Database.ConnectionString);
        var (model, adminTables) = await BatchTables.ReadyModelAsync(Database);
        var open = await BatchTables.CreateFlowersAsync(Database.DataSource, 20);
        var login = Sql.UniqueName("analyst");
        await Database.DataSource.ExecuteAsync($"CREATE ROLE {login} LOGIN PASSWORD 'pw' IN ROLE mad_user; GRANT USAGE ON SCHEMA public TO {login}; GRANT SELECT ON public.{open} TO {login}");
        await using var user = await PostgresModelRegistry.OpenAsync(Database.ConnectionStringFor(login, "pw"), Ct);
        var tables = new ModelAsData.Postgres.Jobs.PostgresPredictionTables(user, TimeSpan.FromMilliseconds(50));

        // Creating prediction tables is for mad_admin (DESIGN.md), even over a table the user may read.
        var denied = await Assert.ThrowsAsync<ModelAsDataException>(() => BatchTables.CreateAsync(tables, Sql.UniqueName("s"), open, model));
        var name = Sql.UniqueName("s");
        await BatchTables.CreateAsync(adminTables, name, open, model);
        await Database.DataSource.ExecuteAsync("UPDATE mad.prediction_tables SET owner = @login WHERE name = @name", new { login, name });
        var refreshed = await tables.RefreshAsync(name, cancellationToken: Ct);
        var read = await user.DataSource.ScalarAsync<long>($"SELECT count(*) FROM mad_out.{name}");
        await Database.DataSource.ExecuteAsync($"REVOKE SELECT ON public.{open} FROM {login}");
        var refreshDenied = await Assert.ThrowsAsync<ModelAsDataException>(() => tables.StartRefreshAsync(name, Ct));

        Assert.Equal(ErrorCode.PermissionDenied, denied.Code);
        Assert.Equal(PostgresErrorCodes.InsufficientPrivilege, Assert.IsType<PostgresException>(denied.InnerException).SqlState);
        Assert.Contains("permission denied for function create_prediction_table", denied.Message, StringComparison.Ordinal);
        Assert.Equal(20, refreshed.Rows);
        Assert.Equal(20, read);
        Assert.Equal(PostgresErrorCodes.InsufficientPrivilege, Assert.IsType<PostgresException>(refreshDenied.InnerException).SqlState);
        Assert.Contains($"may not SELECT from public.{open}", refreshDenied.Message, StringComparison.Ordinal);
    }
}

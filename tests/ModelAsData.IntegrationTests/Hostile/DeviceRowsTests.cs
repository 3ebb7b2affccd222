using ModelAsData.IntegrationTests.Deployments;
using ModelAsData.Postgres.Jobs;

namespace ModelAsData.IntegrationTests.Hostile;

/// <summary>
/// Edge devices (023): one device's login cannot push as another device, nor change or remove the rows another
/// device pushed (predictions, outcomes, profile counts: 047), and a mad_user that is not a device cannot push at all. Written as the attacker would type it.
/// </summary>
public sealed class DeviceRowsTests(PostgresDatabase database) : DatabaseTests(database)
{
    [Fact(Timeout = 120_000)]
    public async Task A_device_cannot_push_as_another_device_nor_overwrite_or_delete_its_rows()
    {
        var model = await PostgresDeploymentTests.ThreeReadyVersionsAsync(new PostgresModelRegistry(Database.DataSource));
        await using var roles = new HostileRoles(Database);
        var (_, victim) = await roles.LoginAsync("shop_a", "IN ROLE mad_device");
        var (_, attacker) = await roles.LoginAsync("shop_b", "IN ROLE mad_device, mad_user");
        var (_, reader) = await roles.LoginAsync("reader", "IN ROLE mad_user");
        var device = "shop-a-" + Guid.NewGuid().ToString("N")[..6];
        string Row(string outputs) =>
            $$"""[{"prediction_table": "scores", "key": "42", "model": "{{model}}", "version": 1, "arm": "champion", "outputs": {{outputs}}, "scored_at": "2026-12-04T00:00:00Z"}]""";

        Assert.Equal(1, await victim.ScalarAsync<long>("SELECT mad.ingest_predictions(@device, @rows::jsonb)", new { device, rows = Row("""{"label": 1}""") }));

        // Pushing under the victim's id, the very row (same key and time) with other outputs, and a new row.
        var asVictim = await attacker.FailsAsync("SELECT mad.ingest_predictions(@device, @rows::jsonb)", new { device, rows = Row("""{"label": 666}""") });
        Assert.Equal(PostgresErrorCodes.InsufficientPrivilege, asVictim.SqlState);
        Assert.Contains("belongs to role", asVictim.MessageText, StringComparison.Ordinal);
        var pullAsVictim = await attacker.FailsAsync("SELECT mad.record_pull(@device, '[]')", new { device });
        Assert.Equal(PostgresErrorCodes.InsufficientPrivilege, pullAsVictim.SqlState);

        // Straight at the tables.
        foreach (var sql in new[]
        {
            $"INSERT INTO mad.edge_predictions (device, prediction_table, key, model, version, arm, outputs, scored_at) VALUES ('{device}', 'scores', '43', '{model}', 1, 'champion', '{{}}', now())",
            $"UPDATE mad.edge_predictions SET outputs = '{{\"label\": 666}}' WHERE device = '{device}'",
            $"DELETE FROM mad.edge_predictions WHERE device = '{device}'",
            $"UPDATE mad.devices SET owner = current_user WHERE id = '{device}'",
            $"DELETE FROM mad.devices WHERE id = '{device}'",
            "TRUNCATE mad.edge_predictions",
        })
        {
            var denied = await attacker.FailsAsync(sql);
            Assert.Equal(PostgresErrorCodes.InsufficientPrivilege, denied.SqlState);
        }

        // A reader (mad_user, no device role) has no push at all.
        var readerPush = await reader.FailsAsync("SELECT mad.ingest_predictions('reader-box', @rows::jsonb)", new { rows = Row("{}") });
        Assert.Equal(PostgresErrorCodes.InsufficientPrivilege, readerPush.SqlState);

        // The victim's row is as it pushed it, and the victim's own second push of it changes nothing.
        Assert.Equal(0, await victim.ScalarAsync<long>("SELECT mad.ingest_predictions(@device, @rows::jsonb)", new { device, rows = Row("""{"label": 2}""") }));
        Assert.Equal("""{"label": 1}""", await Database.DataSource.ScalarAsync<string>("SELECT string_agg(outputs::text, ',') FROM mad.edge_predictions WHERE device = @device", new { device }));
    }

    [Fact(Timeout = 120_000)]
    public async Task A_reader_sees_no_other_device_and_no_pushed_row_of_a_table_it_may_not_read()
    {
        var model = await PostgresDeploymentTests.ThreeReadyVersionsAsync(new PostgresModelRegistry(Database.DataSource));
        await using var roles = new HostileRoles(Database);
        var (_, victim) = await roles.LoginAsync("shop_c", "IN ROLE mad_device, mad_user");
        var (_, otherDevice) = await roles.LoginAsync("shop_d", "IN ROLE mad_device, mad_user");
        var (readerLogin, reader) = await roles.LoginAsync("analyst", "IN ROLE mad_user");
        var device = "shop-c-" + Guid.NewGuid().ToString("N")[..6];
        // A table of its own that nobody else was granted, and a row the device pushes for it.
        var table = Sql.UniqueName("secret_scores");
        await Database.DataSource.ExecuteAsync($"CREATE TABLE mad_out.{table} (id int)");
        var rows = $$"""[{"prediction_table": "{{table}}", "key": "7", "model": "{{model}}", "version": 1, "arm": "champion", "outputs": {"label": 1}, "scored_at": "2026-12-04T00:00:00Z"}]""";
        Assert.Equal(1, await victim.ScalarAsync<long>("SELECT mad.ingest_predictions(@device, @rows::jsonb)", new { device, rows }));

        // What a curious reader and another device type.
        foreach (var snoop in new[] { reader, otherDevice })
        {
            Assert.Equal(0, await snoop.ScalarAsync<long>("SELECT count(*) FROM mad.edge_predictions"));
            Assert.Equal(0, await snoop.ScalarAsync<long>("SELECT count(*) FROM mad.edge_predictions WHERE device = @device", new { device }));
            Assert.Equal(0, await snoop.ScalarAsync<long>("SELECT count(*) FROM mad.devices WHERE id = @device", new { device }));
        }

        // The device sees its own; a reader granted the prediction table sees its rows, not the fleet list.
        Assert.Equal(1, await victim.ScalarAsync<long>("SELECT count(*) FROM mad.edge_predictions WHERE device = @device", new { device }));
        Assert.Equal(1, await victim.ScalarAsync<long>("SELECT count(*) FROM mad.devices WHERE id = @device", new { device }));
        await Database.DataSource.ExecuteAsync($"GRANT SELECT ON mad_out.{table} TO {readerLogin}");
        Assert.Equal(1, await reader.ScalarAsync<long>("SELECT count(*) FROM mad.edge_predictions WHERE device = @device", new { device }));
        Assert.Equal(0, await reader.ScalarAsync<long>("SELECT count(*) FROM mad.devices WHERE id = @device", new { device }));
        await Database.DataSource.ExecuteAsync($"DROP TABLE mad_out.{table}");
    }

    [Fact(Timeout = 120_000)]
    public async Task A_device_cannot_stage_a_push_for_another_device_nor_swap_the_staging_table_for_its_own()
    {
        var model = await PostgresDeploymentTests.ThreeReadyVersionsAsync(new PostgresModelRegistry(Database.DataSource));
        await using var roles = new HostileRoles(Database);
        var (_, victim) = await roles.LoginAsync("shop_e", "IN ROLE mad_device");
        var (_, attacker) = await roles.LoginAsync("shop_f", "IN ROLE mad_device, mad_user");
        var (_, reader) = await roles.LoginAsync("reader", "IN ROLE mad_user");
        var device = "shop-e-" + Guid.NewGuid().ToString("N")[..6];
        var own = "shop-f-" + Guid.NewGuid().ToString("N")[..6];
        var row = $"('scores', '42', '{model}', 1, 'champion', '{{\"label\": 666}}', '2026-12-04T00:00:00Z')";
        await victim.ExecuteAsync(
            $"BEGIN; SELECT mad.begin_device_push(@device); INSERT INTO pg_temp.mad_push_rows VALUES ('scores', '42', '{model}', 1, 'champion', '{{\"label\": 1}}', '2026-12-04T00:00:00Z'); SELECT mad.finish_device_push(@device); COMMIT;",
            new { device });

        // Staging under its own id, finishing under the victim's; beginning under the victim's.
        var finishAsVictim = await attacker.FailsAsync($"BEGIN; SELECT mad.begin_device_push(@own); INSERT INTO pg_temp.mad_push_rows VALUES {row}; SELECT mad.finish_device_push(@device);", new { own, device });
        Assert.Equal(PostgresErrorCodes.InsufficientPrivilege, finishAsVictim.SqlState);
        var beginAsVictim = await attacker.FailsAsync("SELECT mad.begin_device_push(@device)", new { device });
        Assert.Equal(PostgresErrorCodes.InsufficientPrivilege, beginAsVictim.SqlState);

        // Its own table (or a view whose functions would run as the definer) in place of the staging table.
        foreach (var planted in new[]
        {
            "CREATE TEMP TABLE mad_push_rows (prediction_table text, key text, model text, version int, arm text, outputs jsonb, scored_at timestamptz)",
            $"CREATE TEMP VIEW mad_push_rows AS SELECT 'scores'::text AS prediction_table, '42'::text AS key, '{model}'::text AS model, 1 AS version, 'champion'::text AS arm, '{{}}'::jsonb AS outputs, now() AS scored_at",
        })
        {
            var swapped = await attacker.FailsAsync($"BEGIN; {planted}; SELECT mad.finish_device_push(@own);", new { own });
            Assert.Equal(PostgresErrorCodes.ObjectNotInPrerequisiteState, swapped.SqlState);
            var before = await attacker.FailsAsync($"BEGIN; {planted}; SELECT mad.begin_device_push(@own);", new { own });
            Assert.Equal(PostgresErrorCodes.ObjectInUse, before.SqlState);
        }

        // The staging table made for it takes rows, nothing else: no trigger, no drop, no change of shape.
        foreach (var sql in new[]
        {
            "CREATE FUNCTION pg_temp.evil() RETURNS trigger LANGUAGE plpgsql AS 'BEGIN RETURN NEW; END'; CREATE TRIGGER evil BEFORE INSERT ON pg_temp.mad_push_rows FOR EACH ROW EXECUTE FUNCTION pg_temp.evil()",
            "DROP TABLE pg_temp.mad_push_rows",
            "ALTER TABLE pg_temp.mad_push_rows ADD COLUMN device text",
            "SELECT * FROM pg_temp.mad_push_rows",
        })
        {
            var denied = await attacker.FailsAsync($"BEGIN; SELECT mad.begin_device_push(@own); {sql};", new { own });
            Assert.True(denied.SqlState is PostgresErrorCodes.InsufficientPrivilege, $"{sql}: {denied.SqlState} {denied.MessageText}");
        }

        // A reader that is not a device stages nothing.
        var readerBegin = await reader.FailsAsync("SELECT mad.begin_device_push('reader-box')");
        Assert.Equal(PostgresErrorCodes.InsufficientPrivilege, readerBegin.SqlState);
        Assert.Equal("""{"label": 1}""", await Database.DataSource.ScalarAsync<string>("SELECT string_agg(outputs::text, ',') FROM mad.edge_predictions WHERE device = @device", new { device }));
        Assert.Equal(0, await Database.DataSource.ScalarAsync<long>("SELECT count(*) FROM mad.edge_predictions WHERE device = @own", new { own }));
    }

    [Fact(Timeout = 120_000)]
    public async Task A_device_cannot_push_outcomes_for_another_device_and_a_reader_sees_only_the_outcomes_of_tables_it_may_read()
    {
        await using var roles = new HostileRoles(Database);
        var (_, victim) = await roles.LoginAsync("shop_g", "IN ROLE mad_device, mad_user");
        var (_, attacker) = await roles.LoginAsync("shop_h", "IN ROLE mad_device, mad_user");
        var (readerLogin, reader) = await roles.LoginAsync("analyst", "IN ROLE mad_user");
        var device = "shop-g-" + Guid.NewGuid().ToString("N")[..6];
        var own = "shop-h-" + Guid.NewGuid().ToString("N")[..6];
        var table = Sql.UniqueName("secret_scores");
        await Database.DataSource.ExecuteAsync($"CREATE TABLE mad_out.{table} (id int)");
        string Push(string id, string label) =>
            $"BEGIN; SELECT mad.begin_push_outcomes('{id}'); INSERT INTO pg_temp.mad_push_outcomes VALUES ('{table}', '7', '{label}', '2026-12-04T00:00:00Z'); SELECT mad.finish_push_outcomes('{id}'); COMMIT;";
        await victim.ExecuteAsync(Push(device, "1"));

        // Its own staging finished under the victim's id, beginning under it, a planted staging table, the table itself.
        var asVictim = await attacker.FailsAsync(Push(own, "0").Replace($"finish_push_outcomes('{own}')", $"finish_push_outcomes('{device}')", StringComparison.Ordinal));
        Assert.Equal(PostgresErrorCodes.InsufficientPrivilege, asVictim.SqlState);
        Assert.Equal(PostgresErrorCodes.InsufficientPrivilege, (await attacker.FailsAsync($"SELECT mad.begin_push_outcomes('{device}')")).SqlState);
        var planted = await attacker.FailsAsync(
            $"BEGIN; CREATE TEMP TABLE mad_push_outcomes (prediction_table text, key text, label text, observed_at timestamptz); SELECT mad.finish_push_outcomes('{own}');");
        Assert.Equal(PostgresErrorCodes.ObjectNotInPrerequisiteState, planted.SqlState);
        foreach (var sql in new[]
        {
            $"INSERT INTO mad.edge_outcomes (device, prediction_table, key, label, observed_at) VALUES ('{device}', '{table}', '8', '0', now())",
            $"UPDATE mad.edge_outcomes SET label = '0' WHERE device = '{device}'",
            $"DELETE FROM mad.edge_outcomes WHERE device = '{device}'",
        })
        {
            Assert.Equal(PostgresErrorCodes.InsufficientPrivilege, (await attacker.FailsAsync(sql)).SqlState);
        }

        // The victim's own second push of the same outcome adds nothing and changes nothing.
        await victim.ExecuteAsync(Push(device, "2"));
        Assert.Equal("1", await Database.DataSource.ScalarAsync<string>("SELECT string_agg(label, ',') FROM mad.edge_outcomes WHERE device = @device", new { device }));

        // What a curious reader and another device type; then the reader granted the prediction table.
        foreach (var snoop in new[] { reader, attacker })
        {
            Assert.Equal(0, await snoop.ScalarAsync<long>("SELECT count(*) FROM mad.edge_outcomes WHERE device = @device", new { device }));
            Assert.Equal(0, await snoop.ScalarAsync<long>($"SELECT count(*) FROM mad.edge_outcomes WHERE prediction_table = '{table}'"));
        }

        Assert.Equal(1, await victim.ScalarAsync<long>("SELECT count(*) FROM mad.edge_outcomes WHERE device = @device", new { device }));
        await Database.DataSource.ExecuteAsync($"GRANT SELECT ON mad_out.{table} TO {readerLogin}");
        Assert.Equal(1, await reader.ScalarAsync<long>("SELECT count(*) FROM mad.edge_outcomes WHERE device = @device", new { device }));
        Assert.Equal(PostgresErrorCodes.InsufficientPrivilege, (await reader.FailsAsync("SELECT mad.begin_push_outcomes('reader-box')")).SqlState);
        await Database.DataSource.ExecuteAsync($"DROP TABLE mad_out.{table}");
    }

    [Fact(Timeout = 120_000)]
    public async Task A_device_cannot_push_profile_counts_for_another_device_nor_inflate_lower_or_overwrite_them()
    {
        var registry = new PostgresModelRegistry(Database.DataSource);
        var model = await PostgresDeploymentTests.ThreeReadyVersionsAsync(registry);
        var source = await Batch.BatchTables.CreateFlowersAsync(Database.DataSource, 200);
        var table = Sql.UniqueName("fleet_scores");
        await Batch.BatchTables.CreateAsync(new PostgresPredictionTables(registry), table, source, model);
        await Database.DataSource.ExecuteAsync($"SELECT mad.set_baseline(@model, 1, 'public.{source}')", new { model });
        await using var roles = new HostileRoles(Database);
        var (_, victim) = await roles.LoginAsync("shop_i", "IN ROLE mad_device");
        var (_, attacker) = await roles.LoginAsync("shop_j", "IN ROLE mad_device, mad_user");
        var (_, reader) = await roles.LoginAsync("reader", "IN ROLE mad_user");
        var device = "shop-i-" + Guid.NewGuid().ToString("N")[..6];
        var own = "shop-j-" + Guid.NewGuid().ToString("N")[..6];
        // A push as a device types it: the bins it pulled, then its total in one cell (or what an attacker puts there).
        string Push(string begin, string finish, string cells) => $"""
            BEGIN; SELECT mad.begin_push_profile_counts('{begin}');
            INSERT INTO pg_temp.mad_push_baselines SELECT '{model}', 1, kind, column_name, type, edges, categories FROM mad.device_baselines('{model}', 1);
            INSERT INTO pg_temp.mad_push_profile_counts VALUES {cells};
            SELECT count(*) FROM mad.finish_push_profile_counts('{finish}'); COMMIT;
            """;
        string Cell(long count, int bin = 1, string at = "2026-12-04T10:00:00Z", int version = 1) =>
            $"('{table}', '{model}', {version}, '{at}', 'input', 'sepal_length', {bin}, {count})";
        async Task<long> CentralAsync() => await Database.DataSource.ScalarAsync<long>(
            "SELECT coalesce(sum(count), 0) FROM mad.profile_counts WHERE prediction_table = @table AND column_name = 'sepal_length' AND bin = 1", new { table });

        await victim.ExecuteAsync(Push(device, device, Cell(10)));
        Assert.Equal(10, await CentralAsync());

        // Its own staging finished under the victim's id, beginning under it, planted staging tables, the tables themselves.
        Assert.Equal(PostgresErrorCodes.InsufficientPrivilege, (await attacker.FailsAsync(Push(own, device, Cell(1_000_000)))).SqlState);
        Assert.Equal(PostgresErrorCodes.InsufficientPrivilege, (await attacker.FailsAsync($"SELECT mad.begin_push_profile_counts('{device}')")).SqlState);
        foreach (var planted in new[]
        {
            "CREATE TEMP TABLE mad_push_profile_counts (prediction_table text, model text, version int, window_start timestamptz, kind text, column_name text, bin int, count bigint)",
            $"CREATE TEMP VIEW mad_push_profile_counts AS SELECT '{table}'::text AS prediction_table, '{model}'::text AS model, 1 AS version, now() AS window_start, 'input'::text AS kind, 'sepal_length'::text AS column_name, 1 AS bin, 1000000::bigint AS count",
            "CREATE TEMP TABLE mad_push_baselines (model text, version int, kind text, column_name text, type text, edges float8[], categories text[])",
        })
        {
            Assert.Equal(PostgresErrorCodes.ObjectNotInPrerequisiteState, (await attacker.FailsAsync($"BEGIN; {planted}; SELECT mad.finish_push_profile_counts('{own}');")).SqlState);
            Assert.Equal(PostgresErrorCodes.ObjectInUse, (await attacker.FailsAsync($"BEGIN; {planted}; SELECT mad.begin_push_profile_counts('{own}');")).SqlState);
        }

        foreach (var sql in new[]
        {
            $"INSERT INTO mad.edge_profile_counts (device, prediction_table, model, version, window_start, kind, column_name, bin, count) VALUES ('{device}', '{table}', '{model}', 1, '2026-12-04T10:00:00Z', 'input', 'sepal_length', 1, 0)",
            $"UPDATE mad.edge_profile_counts SET count = 0 WHERE device = '{device}'",
            $"DELETE FROM mad.edge_profile_counts WHERE device = '{device}'",
            "TRUNCATE mad.edge_profile_counts",
            $"UPDATE mad.profile_counts SET count = count + 1000000 WHERE prediction_table = '{table}'",
            $"INSERT INTO mad.profile_counts VALUES ('{table}', 1, '2026-12-04T10:00:00Z', 'input', 'sepal_length', 2, 1000000)",
            $"DELETE FROM mad.profile_counts WHERE prediction_table = '{table}'",
            $"BEGIN; SELECT mad.begin_push_profile_counts('{own}'); CREATE FUNCTION pg_temp.evil() RETURNS trigger LANGUAGE plpgsql AS 'BEGIN NEW.count := 1000000; RETURN NEW; END'; CREATE TRIGGER evil BEFORE INSERT ON pg_temp.mad_push_profile_counts FOR EACH ROW EXECUTE FUNCTION pg_temp.evil()",
            $"BEGIN; SELECT mad.begin_push_profile_counts('{own}'); SELECT * FROM pg_temp.mad_push_profile_counts",
        })
        {
            var denied = await attacker.FailsAsync(sql);
            Assert.True(denied.SqlState is PostgresErrorCodes.InsufficientPrivilege, $"{sql}: {denied.SqlState} {denied.MessageText}");
        }

        // Counts that cannot be counts, and a version this database does not hold: refused whole, nothing added.
        foreach (var (cells, state) in new[]
        {
            (Cell(-1_000), PostgresErrorCodes.InvalidParameterValue),
            (Cell(5, bin: 99), PostgresErrorCodes.InvalidParameterValue),
            (Cell(5, at: "2026-12-04T10:30:00Z"), PostgresErrorCodes.InvalidParameterValue),
            ($"{Cell(5)}, {Cell(5)}", PostgresErrorCodes.InvalidParameterValue),
            ($"{Cell(5, bin: 2)}, {Cell(5, version: 99)}", PostgresErrorCodes.NoDataFound),
        })
        {
            var refused = await attacker.FailsAsync(Push(own, own, cells));
            Assert.True(refused.SqlState == state, $"{cells}: {refused.SqlState} {refused.MessageText}");
            Assert.Contains("nothing was added", refused.MessageText, StringComparison.Ordinal);
        }

        // Its own counts add to the cell once; pushing them again, or lower, changes nothing; the victim's total stays its own.
        await attacker.ExecuteAsync(Push(own, own, Cell(5)));
        await attacker.ExecuteAsync(Push(own, own, Cell(5)));
        await attacker.ExecuteAsync(Push(own, own, Cell(0)));
        Assert.Equal(15, await CentralAsync());
        await victim.ExecuteAsync(Push(device, device, Cell(10)));
        Assert.Equal(15, await CentralAsync());
        await victim.ExecuteAsync(Push(device, device, Cell(12)));
        Assert.Equal(17, await CentralAsync());
        Assert.Equal(12, await Database.DataSource.ScalarAsync<long>("SELECT count FROM mad.edge_profile_counts WHERE device = @device", new { device }));

        // Who reads what: a device its own counts, a reader no counts and no baselines.
        Assert.Equal(0, await attacker.ScalarAsync<long>("SELECT count(*) FROM mad.edge_profile_counts WHERE device = @device", new { device }));
        Assert.Equal(1, await victim.ScalarAsync<long>("SELECT count(*) FROM mad.edge_profile_counts WHERE device = @device", new { device }));
        foreach (var sql in new[]
        {
            "SELECT count(*) FROM mad.edge_profile_counts",
            $"SELECT count(*) FROM mad.device_baselines('{model}', 1)",
            "SELECT mad.begin_push_profile_counts('reader-box')",
        })
        {
            Assert.Equal(PostgresErrorCodes.InsufficientPrivilege, (await reader.FailsAsync(sql)).SqlState);
        }
    }
}

using System.Text;
using ModelAsData.IntegrationTests.Batch;
using ModelAsData.IntegrationTests.Postgres;
using ModelAsData.Postgres.Jobs;
using ModelAsData.Sidecar;

namespace ModelAsData.IntegrationTests.Hostile;

/// <summary>
/// A thousand hostile identifiers and values (<see cref="HostileCorpus"/>) through every public mad function, through
/// prediction tables over a source whose table, key and feature columns carry hostile names and whose keys are hostile
/// values (refreshed and streamed by a real sidecar), and through the <c>mad</c> verbs that take names. Each either
/// works exactly (the name or value comes back byte for byte) or fails with a clear error: never a syntax error,
/// never an internal error, never a change to an object it did not name, never an unhandled exception in the CLI.
/// </summary>
public sealed class HostileIdentifierTests(PostgresDatabase database) : MadCliTests(database)
{
    private const string Model = "hostile_model";
    private const string Setosa = "5.1, 3.5, 1.4, 0.2";
    private const string Features = "pg_catalog.jsonb_build_object('float_input', pg_catalog.jsonb_build_array('a', 'b', 'c', 'd'))";

    /// <summary>The clear refusals: a bad name, a bad value, a thing that does not exist, a state that does not allow it.</summary>
    private static readonly HashSet<string> s_clearErrors = new(StringComparer.Ordinal)
    {
        PostgresErrorCodes.InvalidName, PostgresErrorCodes.InvalidParameterValue, PostgresErrorCodes.NoDataFound,
        PostgresErrorCodes.UndefinedColumn, PostgresErrorCodes.ObjectNotInPrerequisiteState,
        ModelAsData.Postgres.Protocol.SqlStates.NotReady, ModelAsData.Postgres.Protocol.SqlStates.FeatureMismatch, ModelAsData.Postgres.Protocol.SqlStates.NoSidecar,
    };

    /// <summary>
    /// A door of a mad function: a call on the hostile string <c>s</c> (and its position <c>i</c>), and whether it must
    /// succeed for a given string. What a call did is kept only for the doors that must work for some strings (their
    /// results are read back); any other call that works is rolled back, so one string's success cannot change the
    /// next one's outcome.
    /// </summary>
    private sealed record Door(string Name, string Call, Func<string, bool> MustWork, bool Keep = false);

    private static readonly Door[] s_functionDoors =
    [
        new("push_model(name)", "mad.push_model(s, '\\x01'::bytea, '{}')", HostileCorpus.IsValidName, Keep: true),
        new("push_model(metadata)", $"mad.push_model('{Model}', '\\x01'::bytea, pg_catalog.jsonb_build_object(s, s))", _ => true, Keep: true),
        new("set_alias(model)", "mad.set_alias(s, 'production', 1)", _ => false),
        new("set_alias(alias)", $"mad.set_alias('{Model}', s, 1)", HostileCorpus.IsValidName, Keep: true),
        new("set_alias(reason)", $"mad.set_alias('{Model}', 'reasoned', 1 + i % 2, s)", _ => true, Keep: true),
        new("rollback_alias(model)", "mad.rollback_alias(s, 'production')", _ => false),
        new("rollback_alias(alias)", $"mad.rollback_alias('{Model}', s)", _ => false),
        new("alias_at(model)", "mad.alias_at(s, 'production', now())", _ => false),
        new("alias_at(alias)", $"mad.alias_at('{Model}', s, now())", _ => false),
        new("resolve(model)", "mad.resolve(s)", _ => false),
        new("resolve(target)", $"mad.resolve('{Model}', s)", _ => false),
        new("require_model", "mad.require_model(s)", _ => false),
        new("create_prediction_table(name)", $"mad.create_prediction_table(s, 'public.hostile_src'::regclass, '{{id}}', '{Model}', {Features})", HostileCorpus.IsValidName, Keep: true),
        new("create_prediction_table(key)", $"mad.create_prediction_table('hostile_pt', 'public.hostile_src'::regclass, ARRAY[s], '{Model}', {Features})", s => s.ToLowerInvariant() is "id" or "a" or "b" or "c" or "d"),
        new("create_prediction_table(model)", $"mad.create_prediction_table('hostile_pt', 'public.hostile_src'::regclass, '{{id}}', s, {Features})", _ => false),
        new("create_prediction_table(feature column)", $"mad.create_prediction_table('hostile_pt', 'public.hostile_src'::regclass, '{{id}}', '{Model}', pg_catalog.jsonb_build_object('float_input', pg_catalog.jsonb_build_array(s, 'b', 'c', 'd')))",
            s => s.Equals("a", StringComparison.OrdinalIgnoreCase)),
        new("create_prediction_table(feature input)", $"mad.create_prediction_table('hostile_pt', 'public.hostile_src'::regclass, '{{id}}', '{Model}', pg_catalog.jsonb_build_object(s, pg_catalog.jsonb_build_array('a', 'b', 'c', 'd')))", _ => false),
        new("refresh", "mad.refresh(s)", _ => false),
        new("watch", "mad.watch(s)", _ => false),
        new("unwatch", "mad.unwatch(s)", _ => false),
        new("stream_lag", "mad.stream_lag(s)", _ => false),
        new("predict_async(reference)", "mad.predict_async(s, '{\"float_input\": [5.1, 3.5, 1.4, 0.2]}')", _ => false),
        new("predict_async(feature name)", $"mad.predict_async('{Model}', pg_catalog.jsonb_build_object(s, pg_catalog.jsonb_build_array(5.1, 3.5, 1.4, 0.2)))", _ => false, Keep: true),
        new("predict_async(feature value)", $"mad.predict_async('{Model}', pg_catalog.jsonb_build_object('float_input', pg_catalog.jsonb_build_array(s, s, s, s)))", _ => false),
        new("inputs_hash", "mad.inputs_hash(pg_catalog.jsonb_build_object(s, s))", _ => true, Keep: true),
    ];

    [Fact(Timeout = 180_000)]
    public async Task A_thousand_hostile_strings_through_every_mad_function_work_exactly_or_fail_clearly_and_change_nothing_else()
    {
        var corpus = HostileCorpus.Strings();
        Assert.True(corpus.Count >= 1000, $"{corpus.Count} strings");
        await PrepareAsync();

        await using var connection = await Database.DataSource.OpenConnectionAsync(Ct);
        await using (var load = new NpgsqlCommand("""
            CREATE TEMP TABLE hostile_corpus AS SELECT c.i::int AS i, c.s FROM pg_catalog.unnest($1::text[]) WITH ORDINALITY c(s, i)
            """, connection) { Parameters = { new() { Value = corpus.ToArray() } } })
        {
            await load.ExecuteNonQueryAsync(Ct);
        }

        await using (var outcomes = new NpgsqlCommand("CREATE TEMP TABLE hostile_outcomes (door text, i int, state text, message text)", connection))
        {
            await outcomes.ExecuteNonQueryAsync(Ct);
        }

        var before = await ObjectsAsync(connection);
        // One round trip per door: the calls run server-side, each in its own subtransaction, each outcome recorded.
        var timings = new List<string>();
        foreach (var door in s_functionDoors)
        {
            var started = System.Diagnostics.Stopwatch.GetTimestamp();
            await using var run = new NpgsqlCommand($$"""
                DO $door$
                DECLARE
                  c record;
                BEGIN
                  FOR c IN SELECT h.i, h.s FROM hostile_corpus h ORDER BY h.i LOOP
                    DECLARE
                      i int := c.i;
                      s text := c.s;
                    BEGIN
                      PERFORM {{door.Call}};
                      IF NOT {{door.Keep}} THEN
                        RAISE EXCEPTION 'worked' USING ERRCODE = 'ZZ001'; -- rolls the subtransaction back
                      END IF;
                      INSERT INTO hostile_outcomes VALUES ({{Literal(door.Name)}}, i, NULL, NULL);
                    EXCEPTION WHEN OTHERS THEN
                      INSERT INTO hostile_outcomes VALUES ({{Literal(door.Name)}}, i, nullif(SQLSTATE, 'ZZ001'), SQLERRM);
                    END;
                  END LOOP;
                END
                $door$
                """, connection);
            await run.ExecuteNonQueryAsync(Ct);
            timings.Add($"{door.Name} {System.Diagnostics.Stopwatch.GetElapsedTime(started).TotalMilliseconds:0} ms");
        }

        TestContext.Current.TestOutputHelper?.WriteLine(string.Join('\n', timings));

        var failures = new List<string>();
        var doors = s_functionDoors.ToDictionary(d => d.Name, StringComparer.Ordinal);
        foreach (var (name, i, state, message) in await QueryAsync<(string, int, string?, string?)>(connection, "SELECT door, i, state, message FROM hostile_outcomes ORDER BY door, i"))
        {
            var s = corpus[i - 1];
            var door = doors[name];
            if (state is null)
            {
                if (!door.MustWork(s) && !HostileCorpus.IsValidName(s) && !MayWork(name, s))
                {
                    failures.Add($"{name} accepted {Show(s)}");
                }
            }
            else if (door.MustWork(s))
            {
                failures.Add($"{name} refused {Show(s)}, which it must take: {state} {message}");
            }
            else if (!s_clearErrors.Contains(state))
            {
                failures.Add($"{name}({Show(s)}): {state} {message}");
            }
        }

        Assert.True(failures.Count == 0, $"{failures.Count} unclear outcomes:\n" + string.Join('\n', failures.Take(60)) + "\n" + string.Join('\n', timings));

        // What worked came back byte for byte: models, aliases, prediction tables and their output tables, reasons.
        var named = corpus.Where(HostileCorpus.IsValidName).ToList();
        Assert.NotEmpty(named);
        foreach (var s in named)
        {
            Assert.Equal(s, await ScalarAsync<string>(connection, "SELECT m.name FROM mad.models m WHERE m.name = $1", s));
            Assert.Equal(s, await ScalarAsync<string>(connection, $"SELECT a.alias FROM mad.aliases a WHERE a.model = '{Model}' AND a.alias = $1", s));
            Assert.Equal(s, await ScalarAsync<string>(connection, "SELECT c.relname::text FROM pg_catalog.pg_class c WHERE c.oid = pg_catalog.to_regclass(pg_catalog.format('mad_out.%I', $1::text))", s));
        }

        // Stored data round-trips too: metadata keys and values, an async request's feature names.
        Assert.Equal(corpus.Count, await ScalarAsync<long>(connection, $"SELECT count(*) FROM pg_catalog.unnest($1::text[]) c(s) WHERE EXISTS (SELECT FROM mad.model_versions v WHERE v.model = '{Model}' AND v.metadata ->> c.s = c.s)", corpus.ToArray()));
        var requested = await QueryAsync<(int, string?)>(connection, "SELECT i, state FROM hostile_outcomes WHERE door = 'predict_async(feature name)' AND state IS NULL");
        Assert.Equal(requested.Count, await ScalarAsync<long>(connection, "SELECT count(*) FROM pg_catalog.unnest($1::text[]) c(s) WHERE EXISTS (SELECT FROM mad.requests r WHERE r.features ? c.s)", requested.Select(r => corpus[r.Item1 - 1]).ToArray()));

        var reasons = await ScalarAsync<long>(connection, $"SELECT count(DISTINCT h.reason) FROM mad.alias_history h WHERE h.model = '{Model}' AND h.alias = 'reasoned' AND h.reason = ANY ($1)", corpus.ToArray());
        Assert.Equal(corpus.Count, reasons);

        // Nothing went that was there, and nothing came that a working call did not name.
        var after = await ObjectsAsync(connection);
        Assert.Empty(before.Except(after));
        var unexpected = after.Except(before).Where(o => !IsNamedBy(o, named)).ToList();
        Assert.True(unexpected.Count == 0, "Objects no call named: " + string.Join(", ", unexpected.Take(20)));
    }

    [Fact(Timeout = 180_000)]
    public async Task Hostile_strings_through_CALL_predict_fail_clearly_without_a_sidecar()
    {
        await PrepareAsync();
        var failures = new List<string>();
        // Other classes call mad.predict on this database meanwhile: count only what these strings could have added.
        var since = await Database.DataSource.ScalarAsync<long>("SELECT coalesce(max(id), 0) FROM mad.requests");
        var strings = HostileCorpus.Strings().Where(s => !s.Contains('\u0000', StringComparison.Ordinal)).ToArray(); // text cannot hold NUL
        await using var connection = await Database.DataSource.OpenConnectionAsync(Ct);
        foreach (var s in HostileCorpus.Strings())
        {
            foreach (var sql in new[] { "CALL mad.predict($1, '{\"float_input\": [5.1, 3.5, 1.4, 0.2]}', NULL)", $"CALL mad.predict('{Model}', pg_catalog.jsonb_build_object($1, 1), NULL)" })
            {
                var outcome = await TryAsync(connection, sql, s, savepoint: false);
                if (outcome is null || !s_clearErrors.Contains(outcome.SqlState))
                {
                    failures.Add($"{sql}({Show(s)}): {outcome?.SqlState ?? "accepted"} {outcome?.MessageText}");
                }
            }
        }

        Assert.Equal(0, await Database.DataSource.ScalarAsync<long>(
            "SELECT count(*) FROM mad.requests WHERE id > @since AND (model = @Model OR reference = ANY(@strings))", new { since, Model, strings }));
        Assert.True(failures.Count == 0, $"{failures.Count} unclear outcomes:\n" + string.Join('\n', failures.Take(40)));
    }

    [Fact(Timeout = 240_000)]
    public async Task A_source_with_hostile_table_column_and_key_names_refreshes_and_streams_every_key_byte_for_byte()
    {
        var (model, tables) = await BatchTables.ReadyModelAsync(Database);
        var names = HostileCorpus.Sample(60).Where(s => HostileCorpus.Utf8Bytes(s) <= 63 && !s.Contains('\u0000', StringComparison.Ordinal)).ToList();
        var keys = HostileCorpus.Strings().Where(k => HostileCorpus.Utf8Bytes(k) <= 1000).Take(300).ToList();
        await using var sidecar = await RunningSidecar.StartAsync(Database.ConnectionString,
            new SidecarOptions { PollInterval = TimeSpan.FromMinutes(5), SidecarId = Sql.UniqueName("hostile") });
        for (var t = 0; t < 3; t++)
        {
            // A table, its key and its four feature columns, each named by a hostile string (distinct within the table).
            var tableName = names[t * 5];
            var keyColumn = names[t * 5 + 1];
            var featureColumns = Enumerable.Range(2, 4).Select(i => names[t * 5 + i]).ToArray();
            if (new[] { keyColumn }.Concat(featureColumns).Distinct(StringComparer.Ordinal).Count() < 5)
            {
                continue;
            }

            var quotedTable = $"public.{Quote(tableName)}";
            await Database.DataSource.ExecuteAsync($"DROP TABLE IF EXISTS {quotedTable}; CREATE TABLE {quotedTable} ({Quote(keyColumn)} text PRIMARY KEY, {string.Join(", ", featureColumns.Select(c => Quote(c) + " real"))})");
            await InsertAsync(quotedTable, keys.Take(200));

            var name = Sql.UniqueName("hostile_pt");
            var features = FeatureMapping.Parse(System.Text.Json.JsonSerializer.Serialize(new Dictionary<string, string[]> { ["float_input"] = featureColumns }));
            await tables.CreateAsync(new PredictionTableSpec(name, quotedTable, [keyColumn], model, features), Ct);
            var job = await BatchTables.WaitAsync(tables, await tables.StartRefreshAsync(name, Ct), seconds: 60);
            Assert.True(job.State == "done", $"{Show(tableName)}: {job.State} {job.Error}");
            await AssertSameKeysAsync(quotedTable, keyColumn, name);

            await Database.DataSource.ExecuteAsync("SELECT mad.watch(@name)", new { name });
            await InsertAsync(quotedTable, keys.Skip(200));
            await Database.DataSource.ExecuteAsync($"DELETE FROM {quotedTable} WHERE {Quote(keyColumn)} = ANY (@gone)", new { gone = keys.Take(20).ToArray() });
            await Eventually.WaitForAsync(() => Database.DataSource.ScalarAsync<long>($"SELECT waiting FROM mad.stream_lag('{name}')"), n => n == 0, "the outbox to drain", TimeSpan.FromSeconds(60));
            await AssertSameKeysAsync(quotedTable, keyColumn, name);
            Assert.Null(await Database.DataSource.ScalarAsync<string?>("SELECT stream_error FROM mad.prediction_tables WHERE name = @name", new { name }));
        }
    }

    [Fact(Timeout = 240_000)]
    public async Task Hostile_names_through_the_mad_verbs_work_or_fail_with_a_message_never_a_stack_trace()
    {
        await PrepareAsync();
        var onnx = Path.Combine(TestModels.Folder, "skl2onnx_logreg_iris.onnx");
        var failures = new List<string>();
        foreach (var s in HostileCorpus.Sample(25))
        {
            foreach (var args in new[]
            {
                new[] { "models", "push", s, onnx },
                ["models", "alias", Model, s, "1"],
                ["models", "alias", s, "production", "1"],
                ["models", "rollback", s, "production"],
                ["models", "show", s],
                ["tables", "create", s, "--model", Model, "--source", "public.hostile_src", "--key", "id"],
                ["tables", "create", "hostile_cli", "--model", s, "--source", s, "--key", s],
                ["tables", "create", "hostile_cli", "--model", Model, "--source", "public.hostile_src", "--key", "id", "--features", $"{{\"float_input\": [{System.Text.Json.JsonSerializer.Serialize(s)}]}}"],
                ["tables", "refresh", s],
                ["tables", "status", s],
                ["tables", "watch", s],
                ["predict", s, "--json", "{\"float_input\": [5.1, 3.5, 1.4, 0.2]}"],
                ["predict", Model, "--json", s],
                ["jobs", "follow", long.TryParse(s, out _) ? "-" + s : s], // a number would follow a job that never ends (no sidecar)
            })
            {
                var (exitCode, output) = await RunAsync(args);
                if (output.Contains("   at ", StringComparison.Ordinal) || output.Contains("Unhandled exception", StringComparison.OrdinalIgnoreCase) || output.Contains("syntax error", StringComparison.Ordinal))
                {
                    failures.Add($"mad {string.Join(' ', args.Select(Show))} → {exitCode}: {output[..Math.Min(output.Length, 400)]}");
                }
                else if (exitCode != 0 && !output.Contains("error", StringComparison.OrdinalIgnoreCase) && !output.Contains("Required", StringComparison.Ordinal)
                         && !output.Contains("Cannot parse", StringComparison.Ordinal) && !output.Contains("Unrecognized", StringComparison.Ordinal))
                {
                    failures.Add($"mad {string.Join(' ', args.Select(Show))} → {exitCode} with no message: {output[..Math.Min(output.Length, 400)]}");
                }
            }
        }

        Assert.True(failures.Count == 0, $"{failures.Count} CLI runs without a clear outcome:\n" + string.Join('\n', failures.Take(30)));
    }

    /// <summary>A ready model with a production alias, and a plain source for the function doors (idempotent: the tests share the database).</summary>
    private async Task PrepareAsync()
    {
        if (await Database.DataSource.ScalarAsync<bool>($"SELECT EXISTS (SELECT FROM mad.models WHERE name = '{Model}')"))
        {
            return;
        }

        var registry = new PostgresModelRegistry(Database.DataSource);
        await registry.PushReadyAsync(Model, "skl2onnx_rf_iris.onnx");
        await registry.PushReadyAsync(Model, "skl2onnx_rf_iris.onnx");
        await registry.SetAliasAsync(Model, "production", 1, cancellationToken: Ct);
        await Database.DataSource.ExecuteAsync($"CREATE TABLE IF NOT EXISTS public.hostile_src (id bigint PRIMARY KEY, a real, b real, c real, d real); INSERT INTO public.hostile_src VALUES (1, {Setosa}) ON CONFLICT DO NOTHING");
    }

    private async Task InsertAsync(string quotedTable, IEnumerable<string> keys)
    {
        await using var connection = await Database.DataSource.OpenConnectionAsync(Ct);
        await using var command = new NpgsqlCommand($"INSERT INTO {quotedTable} SELECT k, 5.1, 3.5, 1.4, 0.2 FROM pg_catalog.unnest($1::text[]) k", connection) { Parameters = { new() { Value = keys.ToArray() } } };
        await command.ExecuteNonQueryAsync(Ct);
    }

    /// <summary>The prediction table holds exactly the source's keys, compared as bytes.</summary>
    private async Task AssertSameKeysAsync(string quotedTable, string keyColumn, string name)
    {
        var source = await Database.DataSource.QueryAsync<byte[]>($"SELECT pg_catalog.convert_to({Quote(keyColumn)}, 'UTF8') FROM {quotedTable} ORDER BY 1");
        var scored = await Database.DataSource.QueryAsync<byte[]>($"SELECT pg_catalog.convert_to({Quote(keyColumn)}, 'UTF8') FROM mad_out.{name} WHERE error IS NULL ORDER BY 1");
        Assert.Equal(source.Select(Convert.ToHexString), scored.Select(Convert.ToHexString));
    }

    private static async Task<PostgresException?> TryAsync(NpgsqlConnection connection, string sql, string value, bool savepoint = true)
    {
        if (savepoint)
        {
            await using var save = new NpgsqlCommand("SAVEPOINT door", connection);
            await save.ExecuteNonQueryAsync(Ct);
        }

        try
        {
            await using var command = new NpgsqlCommand(sql, connection) { Parameters = { new() { Value = value, NpgsqlDbType = NpgsqlTypes.NpgsqlDbType.Text } } };
            await command.ExecuteNonQueryAsync(Ct);
            if (savepoint)
            {
                await using var release = new NpgsqlCommand("RELEASE SAVEPOINT door", connection);
                await release.ExecuteNonQueryAsync(Ct);
            }

            return null;
        }
        catch (PostgresException e)
        {
            if (savepoint)
            {
                await using var rollback = new NpgsqlCommand("ROLLBACK TO SAVEPOINT door", connection);
                await rollback.ExecuteNonQueryAsync(Ct);
            }

            return e;
        }
    }

    /// <summary>Calls that work for a string other than a valid name, by the rules: a feature value is any JSON scalar, a reference may name an alias that exists.</summary>
    private static bool MayWork(string door, string s) => door switch
    {
        // An async request is data until a sidecar scores it: any JSON is stored as it came, and a sidecar answers a
        // feature that does not fit with 22M01 (a clear error, read back with the answer).
        "predict_async(feature name)" or "predict_async(feature value)" => true,
        // Digits are a version number (mad.resolve): those pushed above exist.
        "resolve(target)" => s.All(char.IsAsciiDigit),
        _ => false,
    };

    private static string Literal(string value) => "'" + value.Replace("'", "''", StringComparison.Ordinal) + "'";

    private static async Task<IReadOnlyList<T>> QueryAsync<T>(NpgsqlConnection connection, string sql) =>
        [.. await Dapper.SqlMapper.QueryAsync<T>(connection, new Dapper.CommandDefinition(sql, cancellationToken: Ct))];

    private static async Task<T> ScalarAsync<T>(NpgsqlConnection connection, string sql, object value)
    {
        await using var command = new NpgsqlCommand(sql, connection) { Parameters = { new() { Value = value } } };
        return (T)(await command.ExecuteScalarAsync(Ct))!;
    }

    /// <summary>Every relation, model, alias and prediction table, as text, to compare before and after.</summary>
    private static async Task<HashSet<string>> ObjectsAsync(NpgsqlConnection connection)
    {
        var objects = new HashSet<string>(StringComparer.Ordinal);
        await using var command = new NpgsqlCommand("""
            SELECT n.nspname || '.' || c.relname FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
            WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast') AND n.nspname NOT LIKE 'pg_temp%' AND n.nspname NOT LIKE 'pg_toast_temp%'
            UNION ALL SELECT 'proc ' || p.oid::regprocedure::text FROM pg_catalog.pg_proc p WHERE p.pronamespace = 'mad'::regnamespace
            UNION ALL SELECT 'table ' || p.name || ' ' || p.source::text || ' ' || p.watched FROM mad.prediction_tables p WHERE p.name <> 'hostile_pt'
            UNION ALL SELECT 'trigger ' || t.tgname FROM pg_catalog.pg_trigger t
            UNION ALL SELECT 'setting ' || s.name || '=' || s.value FROM mad.settings s
            """, connection);
        await using var reader = await command.ExecuteReaderAsync(Ct);
        while (await reader.ReadAsync(Ct))
        {
            objects.Add(reader.GetString(0));
        }

        return objects;
    }

    /// <summary>Whether <paramref name="created"/> is what a working call on one of <paramref name="named"/> makes: its output and outbox tables, its triggers, a refresh's build table, capture functions.</summary>
    private static bool IsNamedBy(string created, IReadOnlyList<string> named) =>
        created.StartsWith("mad_build.job_", StringComparison.Ordinal) || created.StartsWith("proc mad.capture_", StringComparison.Ordinal)
        || named.Any(n => created == $"mad_out.{n}" || created == $"mad_out.pkey${Md5(n)}" // its key index: mad.key_constraint(name)
                          || created.StartsWith($"mad_outbox.{n[..Math.Min(n.Length, 40)]}", StringComparison.Ordinal) // its outbox, and the outbox's sequence and key index (named by PostgreSQL from the name's first bytes)
                          || created.StartsWith($"trigger mad_watch_{Md5(n)[..16]}$", StringComparison.Ordinal) || created.StartsWith($"table {n} ", StringComparison.Ordinal));

    private static string Md5(string s) => Convert.ToHexStringLower(System.Security.Cryptography.MD5.HashData(Encoding.UTF8.GetBytes(s)));

    private static string Quote(string identifier) => "\"" + identifier.Replace("\"", "\"\"", StringComparison.Ordinal) + "\"";

    /// <summary>A string as C# would write it, so control and invisible characters show in a failure.</summary>
    private static string Show(string s)
    {
        var shown = new StringBuilder("\"");
        foreach (var c in s.Length > 80 ? s[..80] + "…" : s)
        {
            shown.Append(c is < ' ' or '\u007f' or (>= '\u0080' and <= '\u009f') or '\u200b' or '\u200e' or '\u200f' or '\u202e' or '\u2066' or '\ufeff' or '\u2028' or '\u00a0'
                ? $"\\u{(int)c:x4}" : c.ToString());
        }

        return shown.Append('"').ToString();
    }
}

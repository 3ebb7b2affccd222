using ModelAsData.IntegrationTests.Batch;
using ModelAsData.IntegrationTests.Infrastructure;
using static ModelAsData.IntegrationTests.Requests.RequestSupport;
using static ModelAsData.IntegrationTests.Streaming.StreamingTables;

namespace ModelAsData.IntegrationTests.Hostile;

/// <summary>
/// CVE-2018-1058 against the sidecar's own sessions: a role with CREATE on public defines a more specific overload
/// of a polymorphic built-in (to_jsonb(text) beats pg_catalog.to_jsonb(anyelement) for a text argument, even with
/// pg_catalog searched first), and any session whose search_path includes public calls it, as its own role.
/// </summary>
public sealed class SearchPathTests(PostgresDatabase database) : IClassFixture<PostgresDatabase>
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact(Timeout = 90_000)]
    public async Task Shadowing_built_ins_in_public_never_runs_the_attackers_code_in_the_sidecar()
    {
        await using var roles = new HostileRoles(database);
        var (attacker, attackerSource) = await roles.LoginAsync("mallory");
        // PostgreSQL 15 took CREATE on public from PUBLIC; databases upgraded from older ones, or a careless GRANT, still have it.
        await database.DataSource.ExecuteAsync($"GRANT CREATE ON SCHEMA public TO {attacker}");
        await attackerSource.ExecuteAsync("""
            CREATE TABLE public.shadow_calls (fn text, called_by name);
            GRANT INSERT ON public.shadow_calls TO PUBLIC;
            CREATE FUNCTION public.to_jsonb(text) RETURNS jsonb LANGUAGE plpgsql AS $$
            BEGIN
                INSERT INTO public.shadow_calls VALUES ('to_jsonb', current_user);
                RETURN pg_catalog.to_jsonb($1::pg_catalog.text || '');
            END $$;
            CREATE FUNCTION public.unnest(text[]) RETURNS SETOF text LANGUAGE plpgsql AS $$
            BEGIN
                INSERT INTO public.shadow_calls VALUES ('unnest', current_user);
                RETURN QUERY SELECT pg_catalog.unnest($1::pg_catalog.text[] || '{}'::pg_catalog.text[]);
            END $$;
            """);

        var model = await PushIrisAsync(database);
        await using var sidecar = await StartSidecarAsync(database);

        // A request answered: CALL mad.predict, through the request worker's session.
        var answer = System.Text.Json.Nodes.JsonNode.Parse(await CallAsync(database.DataSource, model, Requests.RequestSupport.Setosa))!;
        Assert.Equal(0, answer["label"]!.GetValue<long>());

        // A refresh run by the sidecar's task runner.
        var (readyModel, tables) = await BatchTables.ReadyModelAsync(database);
        var flowers = await BatchTables.CreateFlowersAsync(database.DataSource, 50);
        var batch = Sql.UniqueName("shadowed_batch");
        await BatchTables.CreateAsync(tables, batch, flowers, readyModel);
        var job = await tables.WaitForJobAsync(await tables.StartRefreshAsync(batch, Ct), cancellationToken: Ct);
        Assert.Equal("done", job.State);
        await BatchTables.AssertOnePredictionPerRowAsync(database.DataSource, flowers, batch);

        // A streamed row: trigger, outbox, the drain's plan and claim, the upsert.
        var (source, name) = await WatchedAsync(database, rows: 0, model: readyModel);
        await database.DataSource.ExecuteAsync($"INSERT INTO public.{source} VALUES (1, {Streaming.StreamingTables.Setosa})");
        await WaitForAsync(database, $"SELECT count(*) FROM mad_out.{name}", 1);
        await WaitForAsync(database, $"SELECT waiting FROM mad.stream_lag('{name}')", 0);

        Assert.Empty(await attackerSource.QueryAsync<(string Fn, string CalledBy)>("SELECT fn, called_by::text FROM public.shadow_calls"));
    }
}

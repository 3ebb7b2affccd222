namespace ModelAsData.Bench;

/// <summary>
/// The stream bench's SQL. It works in fixed names (<c>public.bench_stream_*</c>, prediction table
/// <c>bench_stream</c>), so a re-run on the same database first removes what an earlier or failed run left.
/// </summary>
internal static class StreamBenchSql
{
    public const string Table = "bench_stream";
    public const string Source = "public.bench_stream_flowers";

    /// <summary>Unwatches while the source still exists (unwatch drops its triggers and waiting keys), then drops everything.</summary>
    public const string Cleanup = """
        DO $$
        BEGIN
          IF EXISTS (SELECT FROM mad.prediction_tables p JOIN pg_catalog.pg_class c ON c.oid = p.source WHERE p.name = 'bench_stream') THEN
            PERFORM mad.unwatch('bench_stream');
          END IF;
        END $$;
        DELETE FROM mad.prediction_tables WHERE name = 'bench_stream';
        DROP TABLE IF EXISTS mad_out.bench_stream, public.bench_stream_flowers, public.bench_stream_committed, public.bench_stream_visible;
        DROP FUNCTION IF EXISTS public.bench_stream_committed_at(), public.bench_stream_visible_at();
        """;

    public const string CreateSource = """
        CREATE TABLE public.bench_stream_flowers (id bigint PRIMARY KEY, sepal_length real, sepal_width real, petal_length real, petal_width real)
        """;

    public const string CreatePredictionTable = """
        SELECT mad.create_prediction_table('bench_stream', source => 'public.bench_stream_flowers', key => '{id}', model => $1,
          features => '{"float_input": ["sepal_length", "sepal_width", "petal_length", "petal_width"]}')
        """;

    public const string Watch = "SELECT mad.watch('bench_stream')";
    public const string Unwatch = "SELECT mad.unwatch('bench_stream')";

    /// <summary>Keys waiting and the oldest one's age in seconds (0 when none wait).</summary>
    public const string Lag = "SELECT waiting, coalesce(extract(epoch FROM oldest_age)::float8, 0) FROM mad.stream_lag('bench_stream')";

    public const string InsertOne = """
        INSERT INTO public.bench_stream_flowers (id, sepal_length, sepal_width, petal_length, petal_width) VALUES ($1, $2, $3, $4, $5)
        """;

    public const string InsertMany = """
        INSERT INTO public.bench_stream_flowers (id, sepal_length, sepal_width, petal_length, petal_width)
        SELECT * FROM unnest($1::bigint[], $2::real[], $3::real[], $4::real[], $5::real[])
        """;

    public const string Predicted = "SELECT count(*) FROM mad_out.bench_stream WHERE id BETWEEN $1 AND $2";

    public const string Failed = "SELECT count(*), min(error) FROM mad_out.bench_stream WHERE error IS NOT NULL";

    public const string SelectOne = "SELECT 1";

    /// <summary>
    /// Probes for commit → visible on the server's clock. Deferred constraint triggers run at COMMIT, just before its
    /// WAL flush, so clock_timestamp() there is the writer's commit on the source and the drain's commit on mad_out (the
    /// two flushes about cancel out). No track_commit_timestamp needed, which takes a restart. The second runs
    /// in the sidecar's session (its own search_path, maybe its own role): qualified names, SECURITY DEFINER. Unlogged
    /// side tables: the probes should cost the writers and the drain as little as possible.
    /// </summary>
    public const string InstallProbes = """
        CREATE UNLOGGED TABLE public.bench_stream_committed (id bigint NOT NULL, at timestamptz NOT NULL);
        CREATE UNLOGGED TABLE public.bench_stream_visible (id bigint NOT NULL, at timestamptz NOT NULL);
        CREATE FUNCTION public.bench_stream_committed_at() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
        BEGIN
          INSERT INTO public.bench_stream_committed VALUES (NEW.id, clock_timestamp());
          RETURN NULL;
        END $$;
        CREATE FUNCTION public.bench_stream_visible_at() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
        BEGIN
          INSERT INTO public.bench_stream_visible VALUES (NEW.id, clock_timestamp());
          RETURN NULL;
        END $$;
        CREATE CONSTRAINT TRIGGER bench_stream_committed_at AFTER INSERT ON public.bench_stream_flowers
          DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION public.bench_stream_committed_at();
        CREATE CONSTRAINT TRIGGER bench_stream_visible_at AFTER INSERT OR UPDATE ON mad_out.bench_stream
          DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION public.bench_stream_visible_at();
        """;

    /// <summary>So the probes do not weigh on the throughput phases.</summary>
    public const string DropProbes = """
        DROP TRIGGER bench_stream_committed_at ON public.bench_stream_flowers;
        DROP TRIGGER bench_stream_visible_at ON mad_out.bench_stream;
        """;

    /// <summary>Ids in [$1, $2] that reached mad_out, counted by the probe (what the latency is computed over).</summary>
    public const string Visible = "SELECT count(DISTINCT id) FROM public.bench_stream_visible WHERE id BETWEEN $1 AND $2";

    /// <summary>Commit → first visible per id in [$1, $2], in milliseconds: p50, p99, max.</summary>
    public const string Latency = """
        SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY ms), percentile_cont(0.99) WITHIN GROUP (ORDER BY ms), max(ms)
        FROM (SELECT extract(epoch FROM v.at - c.at)::float8 * 1000 AS ms
              FROM public.bench_stream_committed c
              JOIN (SELECT id, min(at) AS at FROM public.bench_stream_visible WHERE id BETWEEN $1 AND $2 GROUP BY id) v USING (id)
              WHERE c.id BETWEEN $1 AND $2) l
        """;

    /// <summary>Writers' triggers stop NOTIFYing, as a sidecar under load has them do, while this session lives or until <see cref="ReleaseNotifying"/>.</summary>
    public const string StopNotifying = "SELECT mad.stream_set_notify(false)";

    /// <summary>This session no longer keeps NOTIFY off: the sidecar decides again.</summary>
    public const string ReleaseNotifying = "SELECT mad.stream_set_notify(true)";
}

using System.Globalization;
using ModelAsData.Core.Export;

namespace ModelAsData.Postgres.Export;

/// <summary>
/// The statements of a training-set export, all run on the caller's own connection (docs/EXPORT.md): the outcome
/// source and the features are read with the caller's grants, column privileges and row security; the served
/// predictions come through mad.export_served (055_1: mad.served_predictions' rows; 060: the same rule,
/// mad.require_served_history), which checks the caller may read mad_out.&lt;name&gt;. COPY and CREATE TABLE AS take
/// no parameters, so values enter as literals built here from typed values (timestamps in ISO form, invariant numbers,
/// the table name checked against mad.prediction_tables); identifiers are quoted.
/// </summary>
internal static class TrainingSetSql
{
    /// <summary>The binding and its outcomes, with both relations spelt schema-qualified. $1: the table's name.</summary>
    public const string Binding = """
        SELECT p.name, format('%I.%I', sn.nspname, sc.relname), p.key_columns,
               ARRAY(SELECT d.c FROM (SELECT DISTINCT ON (u.c) u.c, u.n FROM unnest(p.feature_columns) WITH ORDINALITY u(c, n)
                                      WHERE u.c <> ALL (p.key_columns) ORDER BY u.c, u.n) d ORDER BY d.n),
               CASE WHEN o.source IS NOT NULL THEN format('%I.%I', onsp.nspname, oc.relname) END, o.key_columns, o.label_column, o.observed_at_column
        FROM mad.prediction_tables p
        JOIN pg_catalog.pg_class sc ON sc.oid = p.source JOIN pg_catalog.pg_namespace sn ON sn.oid = sc.relnamespace
        LEFT JOIN mad.outcomes o ON o.prediction_table = p.name
        LEFT JOIN pg_catalog.pg_class oc ON oc.oid = o.source LEFT JOIN pg_catalog.pg_namespace onsp ON onsp.oid = oc.relnamespace
        WHERE p.name = $1
        """;

    /// <summary>
    /// The binding of a model's online traffic ('online:&lt;model&gt;', 051): the features are the latest each key was
    /// sent with (mad.online_key_features, mad_admin only, as the predictions), as one jsonb column <c>features</c> beside
    /// the caller's <c>key</c>. $1: the pseudo table's name.
    /// </summary>
    public const string OnlineBinding = """
        SELECT o.prediction_table, format('mad.online_key_features(%L)', o.online_model), ARRAY['key'], ARRAY['features'],
               format('%I.%I', onsp.nspname, oc.relname), o.key_columns, o.label_column, o.observed_at_column
        FROM mad.outcomes o
        JOIN pg_catalog.pg_class oc ON oc.oid = o.source JOIN pg_catalog.pg_namespace onsp ON onsp.oid = oc.relnamespace
        WHERE o.prediction_table = $1 AND o.online_model IS NOT NULL
        """;

    /// <summary>
    /// Session settings that fix how values are written (UTC, ISO dates, shortest exact floats), so the same rows give
    /// the same bytes. For speed: no JIT (the planner's row guesses for the joins switch JIT on, which then costs seconds
    /// of compiling), the final sort of a million rows in file order (~260 MB) in memory, and room for the candidates in
    /// local buffers where the session has not used temp tables yet. (Merge joins left on: forcing hash joins on the key
    /// cost 5-10 % more backend CPU at 1 M keys.)
    /// </summary>
    public const string Settings = """
        SET LOCAL TimeZone = 'UTC'; SET LOCAL DateStyle = 'ISO, YMD'; SET LOCAL IntervalStyle = 'iso_8601'; SET LOCAL extra_float_digits = 1;
        SET LOCAL jit = off; SET LOCAL work_mem = '512MB';
        DO $$ BEGIN PERFORM pg_catalog.set_config('temp_buffers', '256MB', true); EXCEPTION WHEN OTHERS THEN NULL; END $$;
        """;

    /// <summary>
    /// Every candidate row into pg_temp.mad_export (the plan needs the pools' counts before it takes rows from them).
    /// </summary>
    public static string Candidates(TrainingSetBinding b, DateTimeOffset cutoff, DateTimeOffset? newSince, long seed, double holdout) =>
        "CREATE TEMP TABLE mad_export ON COMMIT DROP AS " + Rows(b, cutoff, newSince, seed, holdout, bucket: true, onlyWithRow: false);

    /// <summary>
    /// The whole export as one statement, in file order, for an export that takes every row into one file (no mix,
    /// holdout or cap): no temporary table, no second read. Its counts come from <see cref="Tally"/>, run beside it.
    /// </summary>
    public static string Everything(TrainingSetBinding b, DateTimeOffset cutoff, DateTimeOffset? newSince, long seed, string columns) =>
        $"SELECT {columns} FROM ({Rows(b, cutoff, newSince, seed, 0, bucket: true, onlyWithRow: true)}) r ORDER BY r.mad_b, r.mad_k";

    /// <summary>
    /// What <see cref="Everything"/> writes, counted (without the hash it only orders by): (has a source row, new,
    /// served_version, rows). Its rows' served_version is NULL where no prediction was in force.
    /// </summary>
    public static string Tally(TrainingSetBinding b, DateTimeOffset cutoff, DateTimeOffset? newSince) =>
        $"SELECT mad_has_row, mad_new, served_version, count(*) FROM ({Rows(b, cutoff, newSince, 0, 0, bucket: false, onlyWithRow: false)}) r GROUP BY 1, 2, 3";

    /// <summary>
    /// The candidate rows: each key's latest label observed by the cutoff (ties broken by the label's text), the source
    /// row of that key (its features as they are now), and the prediction in force when the label was observed
    /// (mad.export_served, 055_1: the row whose [scored_at, until) holds observed_at, so a hash join on the key and no
    /// sort of the joined rows). The labels meet their source rows first, narrow, in a materialised step, so the
    /// planner joins the wide served rows once rather than sorting or hashing them for the source join (8 % less backend
    /// CPU at 1 M keys). mad_b is the key's sticky bucket under the seed, computed as mad.bucket does (sha256 of
    /// 'seed:key'), inline because a function with its own search_path is called, not inlined, once per row; OFFSET 0
    /// keeps the hash from being flattened into (and computed again by) each of its four get_byte calls. Keys compare in
    /// byte order (COLLATE "C"): faster to sort, and the same order on every server. A label of a device's row (its key
    /// spelled as mad.served_predictions spells the fleet's: device, U+001E, key) is graded by that device's prediction
    /// and joined to the source row of the key after the separator (mad_source_k), and buckets by that key too, so one
    /// source row is never in both training and holdout, whichever of central and devices scored it.
    /// </summary>
    private static string Rows(TrainingSetBinding b, DateTimeOffset cutoff, DateTimeOffset? newSince, long seed, double holdout, bool bucket, bool onlyWithRow)
    {
        var labelKey = KeyText("o", b.OutcomeKeyColumns);
        var sourceKey = KeyText("f", b.KeyColumns);
        var notNull = string.Join(" AND ", b.OutcomeKeyColumns.Select(k => $"o.{Quote(k)} IS NOT NULL"));
        var cut = Timestamp(cutoff);
        var since = newSince is { } s ? Timestamp(s) : "'infinity'::timestamptz";
        var features = string.Concat(b.KeyColumns.Concat(b.FeatureColumns).Select(c => $"f.{Quote(c)}, "));
        var featured = string.Concat(b.KeyColumns.Concat(b.FeatureColumns).Select(c => $"l.{Quote(c)}, "));
        var hashed = bucket
            ? $"""
              SELECT {featured}l.mad_k, l.mad_label, l.mad_observed_at, l.mad_device, l.mad_has_row,
                     ((get_byte(l.h, 0)::bigint << 24) | (get_byte(l.h, 1) << 16) | (get_byte(l.h, 2) << 8) | get_byte(l.h, 3))::double precision / 4294967296.0 AS mad_b
              FROM (SELECT l.*, pg_catalog.sha256(pg_catalog.convert_to({Number(seed)}::text || ':' || l.mad_source_k, 'UTF8')) AS h FROM featured l OFFSET 0) l
              """
            : "SELECT l.*, 0::double precision AS mad_b FROM featured l";
        return $"""
            WITH labels AS (
              SELECT DISTINCT ON (l.mad_k) l.* FROM (
                SELECT {labelKey} COLLATE "C" AS mad_k, o.{Quote(b.LabelColumn)} AS mad_label, o.{Quote(b.ObservedAtColumn)}::timestamptz AS mad_observed_at
                FROM {b.OutcomeSource} o
                WHERE o.{Quote(b.LabelColumn)} IS NOT NULL AND {notNull} AND o.{Quote(b.ObservedAtColumn)}::timestamptz <= {cut}) l
              ORDER BY l.mad_k, l.mad_observed_at DESC, l.mad_label::text DESC
            ),
            fleet AS (
              SELECT l.*, CASE WHEN d.at > 0 THEN substr(l.mad_k, d.at + 1) ELSE l.mad_k END COLLATE "C" AS mad_source_k,
                     CASE WHEN d.at > 0 THEN left(l.mad_k, d.at - 1) END AS mad_device
              FROM labels l CROSS JOIN LATERAL (SELECT strpos(l.mad_k, U&'\001E') AS at) d
            ),
            featured AS MATERIALIZED (
              SELECT {features}l.mad_k, l.mad_label, l.mad_observed_at, l.mad_source_k, l.mad_device, f.{Quote(b.KeyColumns[0])} IS NOT NULL AS mad_has_row
              FROM fleet l {(onlyWithRow ? "JOIN" : "LEFT JOIN")} {b.Source} f ON {sourceKey} COLLATE "C" = l.mad_source_k
            ),
            hashed AS ({hashed})
            SELECT {featured}l.mad_label AS {Quote(b.LabelOut)}, l.mad_observed_at AS {Quote(b.ObservedAtOut)},
                   g.version AS served_version, g.arm AS served_arm, g.outputs AS served_outputs, g.scored_at AS served_at, l.mad_device AS served_device,
                   l.mad_k, l.mad_b, l.mad_b < {Number(holdout)} AS mad_holdout, l.mad_observed_at >= {since} AS mad_new, l.mad_has_row
            FROM hashed l
            LEFT JOIN mad.export_served({Literal(b.Name)}, {cut}) g
              ON g.key COLLATE "C" = l.mad_k AND g.scored_at <= l.mad_observed_at AND (g.until IS NULL OR g.until > l.mad_observed_at)
            """;
    }

    /// <summary>The pools' sizes: (holdout, new, rows with a source row, labels without one, rows without a served prediction).</summary>
    public const string Counts = """
        SELECT mad_holdout, mad_new, count(*) FILTER (WHERE mad_has_row), count(*) FILTER (WHERE NOT mad_has_row),
               count(*) FILTER (WHERE mad_has_row AND served_version IS NULL)
        FROM pg_temp.mad_export GROUP BY 1, 2
        """;

    /// <summary>
    /// One file's rows in hash order (bucket, then key in byte order): with kinds, the first <paramref name="newRows"/>
    /// new and <paramref name="oldRows"/> old rows of its pool; without, its first <paramref name="newRows"/> rows.
    /// </summary>
    public static string Selection(bool holdout, bool byKind, long newRows, long oldRows, string columns, PartCounts? wholePool = null)
    {
        var pool = $"FROM pg_temp.mad_export e WHERE e.mad_has_row AND e.mad_holdout = {(holdout ? "true" : "false")}";
        if (wholePool is { } all && (byKind ? newRows >= all.AvailableNew && oldRows >= all.AvailableOld : newRows >= all.Available))
        {
            // Every row of the pool, in no particular order: what counting them needs, without a sort.
            return $"SELECT {columns} {pool}";
        }

        var order = "ORDER BY mad_b, mad_k";
        var inner = byKind
            ? $"(SELECT * {pool} AND e.mad_new {order} LIMIT {Number(newRows)}) UNION ALL (SELECT * {pool} AND NOT e.mad_new {order} LIMIT {Number(oldRows)})"
            : $"SELECT * {pool} {order} LIMIT {Number(newRows)}";
        return $"SELECT {columns} FROM ({inner}) r {order}";
    }

    /// <summary>A selection's versions: (served_version, rows, new rows).</summary>
    public static string Versions(string selection) =>
        $"SELECT served_version, count(*), count(*) FILTER (WHERE mad_new) FROM ({selection}) s GROUP BY 1 ORDER BY 1 NULLS LAST";

    public static string Quote(string identifier) => "\"" + identifier.Replace("\"", "\"\"", StringComparison.Ordinal) + "\"";

    public static string Columns(TrainingSetBinding b, Func<string, string>? cast = null) =>
        string.Join(", ", b.Columns.Select(c => cast is null ? $"r.{Quote(c)}" : cast(c)));

    /// <summary>The key's canonical text (mad.key_text: each column's text form, a composite key's joined by U+001F), inline.</summary>
    private static string KeyText(string alias, IReadOnlyList<string> columns) =>
        columns.Count == 1
            ? $"{alias}.{Quote(columns[0])}::text"
            : "concat_ws(U&'\\001F', " + string.Join(", ", columns.Select(c => $"{alias}.{Quote(c)}::text")) + ")";

    private static string Timestamp(DateTimeOffset value) => $"'{value.UtcDateTime.ToString("yyyy-MM-dd HH:mm:ss.ffffff", CultureInfo.InvariantCulture)}+00'::timestamptz";

    private static string Literal(string text) => "'" + text.Replace("'", "''", StringComparison.Ordinal) + "'";

    private static string Number(double value) => value.ToString("R", CultureInfo.InvariantCulture);

    private static string Number(long value) => value.ToString(CultureInfo.InvariantCulture);
}

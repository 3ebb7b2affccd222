using System.Diagnostics;
using Dapper;
using Npgsql;
using Spectre.Console;

namespace ModelAsData.Bench;

/// <summary>
/// <c>mad bench --section outcomes</c> (docs/BENCHMARKS.md, issue 17): <c>mad.performance</c> over <c>rows</c> served
/// predictions of a binary classifier with as many outcomes, against a plain SQL join of the same history and outcomes
/// computing accuracy per window, version and arm, timed alternately in the same run. Goal: ≤ 2× the join.
/// </summary>
internal sealed class OutcomesBench(string db, int rows, int rounds, IAnsiConsole console)
{
    /// <summary>Seven daily windows, two arms (one row in ten on the canary, version 2).</summary>
    private const int Windows = 7;

    public async Task RunAsync(CancellationToken cancellationToken)
    {
        await using var dataSource = Postgres.PostgresDataSource.Create(db, "mad bench outcomes");
        var name = "bench_outcomes_" + Guid.NewGuid().ToString("N")[..8];
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken);
        try
        {
            await LoadAsync(connection, name);
            var performance = new List<double>();
            var join = new List<double>();
            for (var round = 0; round < rounds; round++)
            {
                var watch = Stopwatch.StartNew();
                var metrics = await connection.ExecuteScalarAsync<long>($"SELECT count(*) FROM mad.performance('{name}')", commandTimeout: 3600);
                performance.Add(watch.Elapsed.TotalSeconds);
                watch.Restart();
                var groups = await connection.ExecuteScalarAsync<long>(PlainJoin(name), commandTimeout: 3600);
                join.Add(watch.Elapsed.TotalSeconds);
                if (metrics != groups * 8)
                {
                    throw new InvalidOperationException($"mad.performance returned {metrics} rows for {groups} (window, version, arm) groups, not 8 metrics each.");
                }

                console.MarkupLineInterpolated($"[grey]round {round + 1}: mad.performance {performance[^1]:0.00} s, plain join {join[^1]:0.00} s[/]");
            }

            var p = Median(performance);
            var j = Median(join);
            console.MarkupLineInterpolated(
                $"mad.performance {p:0.00} s ({p / Windows:0.00} s per window), plain join computing accuracy {j:0.00} s: {p / j:0.0}× the join (goal ≤ 2×; {rows:N0} predictions and outcomes, {Windows} windows × 2 arms, median of {rounds}).");
        }
        finally
        {
            await connection.ExecuteAsync($"""
                DELETE FROM mad.prediction_tables WHERE name = '{name}';
                DROP TABLE IF EXISTS mad_history.{name}, mad_out.{name}, public.{name}_events, public.{name}_source;
                """);
        }
    }

    /// <summary>The reference: what a user would write to get accuracy per window, version and arm from the same tables.</summary>
    private static string PlainJoin(string name) => $"""
        SELECT count(*) FROM (
          SELECT date_bin('1 day', h.scored_at, '2000-01-03'), h.version, h.arm, avg((h.outputs ->> 'label' = e.label)::int)
          FROM mad_history.{name} h JOIN public.{name}_events e ON e.id::text = h.key
          GROUP BY 1, 2, 3) g
        """;

    /// <summary>
    /// A prediction table bound to outcomes, its history written directly (as refreshes leave it): probabilities
    /// uniform, labels drawn from them, each label observed five hours after its prediction. The outcomes are keyed
    /// (a primary key on id), so mad.performance grades them by one join (056_1); without it, by its per-key pass.
    /// </summary>
    private async Task LoadAsync(NpgsqlConnection connection, string name)
    {
        console.MarkupLineInterpolated($"[grey]loading {rows:N0} served predictions and outcomes…[/]");
        // Any bytes make a version the binding's model may name; nothing is scored.
        await connection.ExecuteAsync($"""
            SELECT mad.push_model('{name}', '\x01'::bytea);
            CREATE TABLE public.{name}_source (id bigint PRIMARY KEY);
            INSERT INTO mad.prediction_tables (name, source, key_columns, key_types, model, features, feature_columns, columns)
            VALUES ('{name}', 'public.{name}_source', '{"{id}"}', '{"{bigint}"}', '{name}', '{"{}"}', '{"{}"}', '[]');
            CREATE TABLE mad_out.{name} (id bigint PRIMARY KEY, label text, probability_0 real, probability_1 real,
                                         model_version int NOT NULL, arm text NOT NULL, scored_at timestamptz NOT NULL, error text);
            CREATE TABLE public.{name}_events (id bigint PRIMARY KEY, label text, observed_at timestamptz);
            SELECT mad.set_outcomes('{name}', source => 'public.{name}_events', key => '{"{id}"}', label => 'label', observed_at => 'observed_at');
            SELECT setseed(0.17);
            INSERT INTO mad_history.{name} (key, version, arm, outputs, scored_at)
            SELECT g::text, CASE WHEN g % 10 = 0 THEN 2 ELSE 1 END, CASE WHEN g % 10 = 0 THEN 'canary' ELSE 'champion' END,
                   jsonb_build_object('label', CASE WHEN p >= 0.5 THEN '1' ELSE '0' END, 'probability_0', 1 - p, 'probability_1', p),
                   timestamptz '2026-11-02' + (g % {Windows}) * interval '1 day' + interval '1 hour'
            FROM (SELECT g, random() AS p FROM generate_series(1::bigint, {rows}) g) s;
            INSERT INTO public.{name}_events
            SELECT h.key::bigint, CASE WHEN random() < (h.outputs ->> 'probability_1')::double precision THEN '1' ELSE '0' END, h.scored_at + interval '5 hours'
            FROM mad_history.{name} h;
            ANALYZE mad_history.{name};
            ANALYZE public.{name}_events;
            """, commandTimeout: 3600);
    }

    private static double Median(List<double> values) => values.Order().ElementAt(values.Count / 2);
}

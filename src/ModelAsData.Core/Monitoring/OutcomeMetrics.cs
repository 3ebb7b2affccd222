using System.Globalization;
using System.Text.Json.Nodes;

namespace ModelAsData.Core.Monitoring;

/// <summary>A prediction as it was served (a history row): its key as mad.key_text spells it, and its outputs by column.</summary>
public sealed record ServedPrediction(string Key, int Version, string Arm, JsonObject Outputs, DateTimeOffset ScoredAt);

/// <summary>A label of an outcome source: its key as mad.key_text spells it, the label as text, when it was observed.</summary>
public sealed record ObservedOutcome(string Key, string Label, DateTimeOffset ObservedAt);

/// <summary>One metric with the statistics mad.compare tests it by: successes and trials of a rate, the per-row variance of a mean.</summary>
public sealed record OutcomeMetric(DateTimeOffset WindowStart, DateTimeOffset WindowEnd, int Version, string Arm, string Metric, double? Value,
    long NLabeled, double Coverage, long? Successes, long? Trials, double? Variance)
{
    public PerformanceRow ToRow() => new(WindowStart, WindowEnd, Version, Arm, Metric, Value, NLabeled, Coverage);
}

/// <summary>
/// mad.outcome_metrics (sql/postgres/027_1_performance_in_one_pass.sql) in-process, for the embedded store: the same
/// point-in-time join (a key's latest label grades its latest prediction scored at or before the label was observed),
/// the same windows (date_bin from Monday 2000-01-03 UTC), the same metrics by scikit-learn's definitions, the same
/// notices and errors. Step for step with the SQL, so that both stores give the same numbers on the same rows; where
/// the SQL leaves a tie to the planner (two observations of a key at the same instant) the greater label wins here.
/// </summary>
public static class OutcomeMetrics
{
    private static readonly DateTimeOffset s_origin = new(2000, 1, 3, 0, 0, 0, TimeSpan.Zero);

    /// <summary>Metrics per window, version and arm, in mad.performance's order, and the notices.</summary>
    /// <param name="source">The outcome source and its label column, as the messages name them.</param>
    /// <param name="since">Only predictions scored at or after it count (mad.outcome_metrics' since: mad.compare's
    /// current deployment); a label may then grade a row served before it, so no notice counts unmatched labels.</param>
    public static (IReadOnlyList<OutcomeMetric> Metrics, IReadOnlyList<string> Notices) Compute(IReadOnlyList<ServedPrediction> served,
        IEnumerable<ObservedOutcome> labels, TimeSpan window, DateTimeOffset? asOf, string table, string source, string labelColumn, DateTimeOffset? since = null)
    {
        if (window <= TimeSpan.Zero)
        {
            throw new ModelAsDataException(ErrorCode.InvalidArgument, $"The window {window} is not a positive interval of days, hours or less. Use for example 1d or 7d.");
        }

        var rows = asOf is not null || since is not null
            ? served.Where(s => (asOf is not { } cut || s.ScoredAt <= cut) && (since is not { } from || s.ScoredAt >= from)).ToList()
            : served;
        if (rows.Count == 0)
        {
            return ([], []);
        }

        // One entry per key: its latest observation, and the scored_at of the prediction that label grades.
        var keys = new Dictionary<string, KeyState>(StringComparer.Ordinal);
        foreach (var label in labels)
        {
            if (asOf is { } a && label.ObservedAt > a)
            {
                continue;
            }

            if (!keys.TryGetValue(label.Key, out var k))
            {
                keys[label.Key] = new KeyState { Labels = 1, ObservedAt = label.ObservedAt, Y = label.Label };
                continue;
            }

            k.Labels++;
            if (label.ObservedAt > k.ObservedAt || (label.ObservedAt == k.ObservedAt && string.CompareOrdinal(label.Label, k.Y) > 0))
            {
                (k.ObservedAt, k.Y) = (label.ObservedAt, label.Label);
            }
        }

        foreach (var s in rows)
        {
            if (keys.TryGetValue(s.Key, out var k) && s.ScoredAt <= k.ObservedAt && (k.GradedAt is not { } g || s.ScoredAt > g))
            {
                k.GradedAt = s.ScoredAt;
            }
        }

        var model = Model.Of(rows[0].Outputs);
        var groups = new SortedDictionary<(DateTimeOffset W, int Version, string Arm), Group>(GroupOrder.Instance);
        var predictions = new HashSet<string>(StringComparer.Ordinal);
        var labelled = new HashSet<string>(StringComparer.Ordinal);
        string? someLabel = null;
        foreach (var s in rows)
        {
            var w = WindowOf(s.ScoredAt, window);
            if (!groups.TryGetValue((w, s.Version, s.Arm), out var group))
            {
                groups[(w, s.Version, s.Arm)] = group = new Group();
            }

            string? raw = keys.TryGetValue(s.Key, out var k) && k.GradedAt == s.ScoredAt ? k.Y : null;
            var pred = Text(s.Outputs, "label");
            if (pred is not null)
            {
                predictions.Add(pred);
            }

            string? y = raw is null ? null
                : !model.Classifier ? ""
                : model.BooleanClasses ? raw
                : raw switch { "true" => "1", "false" => "0", _ => raw };
            var pPos = model.Binary ? Number(s.Outputs, model.PositiveKey!) : null;
            var pNeg = model.Binary ? Number(s.Outputs, model.NegativeKey!) : null;
            group.N++;
            group.PPred += (model.Binary ? (pred == model.Positive ? pPos : pred == model.Negative ? pNeg : null) : Probability(s.Outputs, pred)) ?? 1;
            if (y is null)
            {
                continue;
            }

            group.NLabeled++;
            if (!model.Classifier)
            {
                if (!double.TryParse(raw, NumberStyles.Float, CultureInfo.InvariantCulture, out var truth))
                {
                    throw new ModelAsDataException(ErrorCode.InvalidArgument,
                        $"Column {QuoteIdent(labelColumn)} of {source} holds labels that are not numbers, and {table}'s model is a regressor.");
                }

                if (model.ValueKey is { } valueKey && Number(s.Outputs, valueKey) is { } predicted)
                {
                    var err = predicted - truth;
                    var ape = Math.Abs(err) / Math.Max(Math.Abs(truth), 2.220446049250313e-16);
                    group.Errors++;
                    (group.AbsErr, group.SqErr, group.Err, group.Ape, group.Ape2) =
                        (group.AbsErr + Math.Abs(err), group.SqErr + (err * err), group.Err + err, group.Ape + ape, group.Ape2 + (ape * ape));
                }

                continue;
            }

            someLabel ??= y;
            labelled.Add(y);
            if (y == pred)
            {
                group.Correct++;
            }

            var loss = -Math.Log(Math.Max(Math.Min(
                (model.Binary ? (y == model.Positive ? pPos : y == model.Negative ? pNeg : null) : Probability(s.Outputs, y)) ?? 0, 1 - 1e-15), 1e-15));
            group.Loss += loss;
            group.Loss2 += loss * loss;
            group.Class(y).Actual++;
            if (y == pred)
            {
                group.Class(y).TruePositives++;
            }

            if (pred is not null)
            {
                group.Class(pred).Predicted++;
            }

            var conf = model.Binary ? pPos ?? 0 : Probability(s.Outputs, pred) ?? 1;
            var hit = model.Binary ? y == model.Positive : y == pred;
            var bin = (int)Math.Min(Math.Floor(conf * 10), 9);
            var calibration = group.Calibration.TryGetValue(bin, out var c) ? c : (0L, 0.0, 0L);
            group.Calibration[bin] = (calibration.Item1 + 1, calibration.Item2 + conf, calibration.Item3 + (hit ? 1 : 0));
            if (model.Binary)
            {
                group.Ranked(model.Positive!).Add((conf, hit));
            }
            else
            {
                foreach (var cls in model.Classes ?? [])
                {
                    group.Ranked(cls).Add((Probability(s.Outputs, cls) ?? 0, y == cls));
                }
            }
        }

        // Not one label is a class of the model or a prediction it made: labels of another vocabulary, never a silent zero.
        if (model.Classifier && someLabel is not null && !labelled.Any(y => model.Classes?.Contains(y) == true || predictions.Contains(y)))
        {
            throw new ModelAsDataException(ErrorCode.InvalidArgument,
                $"No label in column {QuoteIdent(labelColumn)} of {source} is one of the classes of {table}'s model " +
                $"(labels such as {QuoteLiteral(someLabel)}, classes such as {string.Join(", ", predictions.Order(StringComparer.Ordinal).Select(QuoteLiteral))}).");
        }

        var notices = new List<string>();
        var duplicates = keys.Values.Where(k => k.Labels > 1).Sum(k => k.Labels - 1);
        if (duplicates > 0)
        {
            notices.Add($"{duplicates} outcome(s) of {source} repeat a key: the latest observation of each key is used.");
        }

        var unmatched = keys.Count - groups.Values.Sum(g => g.NLabeled);
        if (unmatched > 0 && since is null)
        {
            notices.Add($"{unmatched} outcome(s) of {source} match no prediction of {table} scored at or before they were observed: they are not counted.");
        }

        var metrics = new List<OutcomeMetric>();
        foreach (var ((w, version, arm), g) in groups)
        {
            var add = (string metric, double? value, long? successes, long? trials, double? variance) =>
                metrics.Add(new OutcomeMetric(w, w + window, version, arm, metric, value, g.NLabeled, (double)g.NLabeled / g.N, successes, trials, variance));
            double? PerRow(double? sum) => g.NLabeled > 0 ? sum / g.NLabeled : null;
            double? Variance(double sum2, double sum) => g.NLabeled > 1 ? (sum2 - (sum * sum / g.NLabeled)) / (g.NLabeled - 1) : null;
            if (model.Classifier)
            {
                var prf = g.PrecisionRecallF1(model);
                var binary = model.Classes?.Count == 2;
                add("accuracy", PerRow(g.Correct), g.Correct, g.NLabeled, null);
                add("precision", prf?.Precision, binary && prf is not null ? prf.Value.TruePositives : null, binary ? prf?.Predicted : null, null);
                add("recall", prf?.Recall, binary && prf is not null ? prf.Value.TruePositives : null, binary ? prf?.Actual : null, null);
                add("f1", prf?.F1, null, null, null);
                add("roc_auc", g.RocAuc(), null, null, null);
                add("log_loss", PerRow(g.NLabeled > 0 ? g.Loss : null), null, g.NLabeled, g.NLabeled > 0 ? Variance(g.Loss2, g.Loss) : null);
                add("ece", g.Calibration.Count > 0 ? g.Calibration.Values.Sum(b => Math.Abs(b.Item2 - b.Item3)) / g.Calibration.Values.Sum(b => b.Item1) : null, null, null, null);
                add("cbpe_accuracy", g.PPred / g.N, null, null, null);
            }
            else
            {
                var any = g.Errors > 0;
                add("mae", any ? PerRow(g.AbsErr) : null, null, g.NLabeled, any ? Variance(g.SqErr, g.AbsErr) : null);
                add("rmse", any && g.NLabeled > 0 ? Math.Sqrt(g.SqErr / g.NLabeled) : null, null, null, null);
                add("mape", any ? PerRow(g.Ape) : null, null, g.NLabeled, any ? Variance(g.Ape2, g.Ape) : null);
                add("mean_error", any ? PerRow(g.Err) : null, null, g.NLabeled, any ? Variance(g.SqErr, g.Err) : null);
            }
        }

        return (metrics, notices);
    }

    /// <summary>date_bin(window, at, '2000-01-03 00:00+00'): weekly windows start on Mondays (UTC).</summary>
    public static DateTimeOffset WindowOf(DateTimeOffset at, TimeSpan window)
    {
        var since = (at - s_origin).Ticks;
        var stride = window.Ticks;
        var start = since - (since % stride);
        if (since < 0 && since % stride != 0)
        {
            start -= stride;
        }

        return s_origin + TimeSpan.FromTicks(start);
    }

    /// <summary>What PostgreSQL's <c>outputs -&gt;&gt; key</c> gives: a string as is, a number or boolean as its JSON text, NULL for null or missing.</summary>
    public static string? Text(JsonObject outputs, string key) =>
        outputs.TryGetPropertyValue(key, out var node) && node is JsonValue value
            ? value.TryGetValue<string>(out var s) ? s : value.ToJsonString()
            : null;

    private static double? Number(JsonObject outputs, string key) =>
        Text(outputs, key) is { } text ? double.Parse(text, NumberStyles.Float, CultureInfo.InvariantCulture) : null;

    private static double? Probability(JsonObject outputs, string? cls) => cls is null ? null : Number(outputs, "probability_" + cls);

    internal static string QuoteIdent(string name) =>
        name.Length > 0 && (char.IsAsciiLetterLower(name[0]) || name[0] == '_') && name.All(c => char.IsAsciiLetterLower(c) || char.IsAsciiDigit(c) || c is '_' or '$')
            ? name : "\"" + name.Replace("\"", "\"\"", StringComparison.Ordinal) + "\"";

    private static string QuoteLiteral(string text) => "'" + text.Replace("'", "''", StringComparison.Ordinal) + "'";

    private sealed class KeyState
    {
        public long Labels;
        public DateTimeOffset ObservedAt;
        public string Y = "";
        public DateTimeOffset? GradedAt;
    }

    /// <summary>What the model is, from one served row's outputs (027_1's model CTE).</summary>
    private sealed record Model(bool Classifier, IReadOnlyList<string>? Classes, string? ValueKey, bool BooleanClasses)
    {
        public bool Binary => Classifier && Classes?.Count == 2;

        public string? Positive => Binary ? Classes![1] : null;

        public string? Negative => Binary ? Classes![0] : null;

        public string? PositiveKey => Binary ? "probability_" + Classes![1] : null;

        public string? NegativeKey => Binary ? "probability_" + Classes![0] : null;

        public static Model Of(JsonObject outputs)
        {
            var keys = outputs.Select(p => p.Key).Order(StringComparer.Ordinal).ToList();
            var classes = keys.Where(k => k.StartsWith("probability_", StringComparison.Ordinal)).Select(k => k[12..]).ToList();
            var valueKey = keys.FirstOrDefault(k => outputs[k] is JsonValue v && v.GetValueKind() == System.Text.Json.JsonValueKind.Number);
            var label = Text(outputs, "label");
            return new Model(outputs.ContainsKey("label"), classes.Count > 0 ? classes : null, valueKey, label is "true" or "false");
        }
    }

    private sealed class ClassCounts
    {
        public long TruePositives;
        public long Predicted;
        public long Actual;
    }

    /// <summary>The sums of one window, version and arm.</summary>
    private sealed class Group
    {
        public long N;
        public long NLabeled;
        public long Correct;
        public double PPred;
        public double Loss;
        public double Loss2;
        public long Errors;
        public double AbsErr;
        public double SqErr;
        public double Err;
        public double Ape;
        public double Ape2;
        public readonly SortedDictionary<string, ClassCounts> Classes = new(StringComparer.Ordinal);
        public readonly SortedDictionary<int, (long, double, long)> Calibration = [];
        private readonly SortedDictionary<string, List<(double Score, bool Positive)>> _ranked = new(StringComparer.Ordinal);

        public ClassCounts Class(string cls) => Classes.TryGetValue(cls, out var c) ? c : Classes[cls] = new ClassCounts();

        public List<(double Score, bool Positive)> Ranked(string cls) => _ranked.TryGetValue(cls, out var r) ? r : _ranked[cls] = [];

        /// <summary>Binary: the positive class; otherwise macro averages over the classes present (027_1's prf).</summary>
        public (double Precision, double Recall, double F1, long TruePositives, long Predicted, long Actual)? PrecisionRecallF1(Model model)
        {
            var present = Classes.Where(c => c.Value.Actual > 0 || c.Value.Predicted > 0 || c.Value.TruePositives > 0).ToList();
            var greatest = present.Count > 0 ? present[^1].Key : null;
            var chosen = present.Where(c => model.Classes?.Count == 2 ? c.Key == model.Classes[1]
                : model.Classes is null ? present.Count > 2 || c.Key == greatest : true).Select(c => c.Value).ToList();
            if (chosen.Count == 0)
            {
                return null;
            }

            return (chosen.Average(c => c.Predicted > 0 ? (double)c.TruePositives / c.Predicted : 0),
                chosen.Average(c => c.Actual > 0 ? (double)c.TruePositives / c.Actual : 0),
                chosen.Average(c => c.Predicted + c.Actual > 0 ? 2.0 * c.TruePositives / (c.Predicted + c.Actual) : 0),
                chosen.Sum(c => c.TruePositives), chosen.Sum(c => c.Predicted), chosen.Sum(c => c.Actual));
        }

        /// <summary>Per class (Σ mean ranks of the positives − P(P + 1)/2) / (P · N), averaged over the classes where it is defined.</summary>
        public double? RocAuc()
        {
            var aucs = new List<double>();
            foreach (var rows in _ranked.Values)
            {
                var sorted = rows.OrderBy(r => r.Score).ToList();
                long positives = sorted.Count(r => r.Positive), negatives = sorted.Count - positives;
                if (positives == 0 || negatives == 0)
                {
                    continue;
                }

                double rankSum = 0;
                for (var i = 0; i < sorted.Count;)
                {
                    var j = i;
                    while (j < sorted.Count && sorted[j].Score == sorted[i].Score)
                    {
                        j++;
                    }

                    var meanRank = (i + 1 + j) / 2.0; // ranks i+1 … j share their mean
                    for (; i < j; i++)
                    {
                        rankSum += sorted[i].Positive ? meanRank : 0;
                    }
                }

                aucs.Add((rankSum - (positives * (positives + 1) / 2.0)) / (positives * negatives));
            }

            return aucs.Count > 0 ? aucs.Average() : null;
        }
    }

    private sealed class GroupOrder : IComparer<(DateTimeOffset W, int Version, string Arm)>
    {
        public static readonly GroupOrder Instance = new();

        public int Compare((DateTimeOffset W, int Version, string Arm) x, (DateTimeOffset W, int Version, string Arm) y)
        {
            var c = x.W.CompareTo(y.W);
            c = c != 0 ? c : x.Version.CompareTo(y.Version);
            return c != 0 ? c : string.CompareOrdinal(x.Arm, y.Arm);
        }
    }
}

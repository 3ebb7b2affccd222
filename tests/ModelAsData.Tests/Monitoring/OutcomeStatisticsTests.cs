using System.Text.Json.Nodes;
using ModelAsData.Core;
using ModelAsData.Core.Monitoring;

namespace ModelAsData.Tests.Monitoring;

/// <summary>
/// The embedded store's outcome grading against issue 17's goldens (scikit-learn and scipy values), the same ones
/// PostgreSQL's PerformanceTests and CompareStatisticsTests hold mad.performance and mad.compare to.
/// </summary>
public sealed class OutcomeStatisticsTests
{
    private static readonly DateTimeOffset s_day = new(2026, 11, 2, 10, 0, 0, TimeSpan.Zero);

    private static JsonObject Binary(double p) => new() { ["label"] = p >= 0.5 ? "1" : "0", ["probability_0"] = 1 - p, ["probability_1"] = p };

    private static double? Metric(IEnumerable<OutcomeMetric> metrics, string name) => metrics.Single(m => m.Metric == name).Value;

    [Fact]
    public void Two_proportions_and_the_sample_ratio_give_the_goldens()
    {
        var z = CompareStatistics.Proportion(1_000, 10_000, 1_100, 10_000);
        var ratio = CompareStatistics.SampleRatio(10_300, 9_700, 50)!.Value;

        Assert.Equal(2.307, z.Statistic!.Value, 3);
        Assert.Equal(0.0211, z.PValue!.Value, 4);
        Assert.Equal(0.01, z.Difference!.Value, 12);
        Assert.True(z.CiLow < 0.01 && z.CiHigh > 0.01);
        Assert.Equal(18, ratio.ChiSquare, 9);
        Assert.True(ratio.Mismatch);
        Assert.Null(CompareStatistics.SampleRatio(10, 10, null));
    }

    [Fact]
    public void Welch_matches_scipy()
    {
        // scipy.stats.ttest_ind_from_stats(0.52, sqrt(0.04), 400, 0.48, sqrt(0.09), 300, equal_var=False) reversed: b − a.
        var t = CompareStatistics.Welch(0.52, 0.04, 400, 0.48, 0.09, 300);

        Assert.Equal(-2, t.Statistic!.Value, 9);
        Assert.Equal(0.046051, t.PValue!.Value, 6);
        Assert.Equal(default, CompareStatistics.Welch(1, 0.1, 1, 2, 0.1, 10)); // a variance needs two rows per arm
    }

    [Fact]
    public void Log_loss_ece_cbpe_and_auc_match_the_goldens()
    {
        var served = new List<ServedPrediction>();
        var labels = new List<ObservedOutcome>();
        foreach (var (p, y, i) in new[] { (0.9, "1", 1), (0.2, "0", 2), (0.6, "0", 3) })
        {
            served.Add(new ServedPrediction($"{i}", 1, "champion", Binary(p), s_day));
            labels.Add(new ObservedOutcome($"{i}", y, s_day.AddHours(2)));
        }

        for (var i = 0; i < 200; i++)
        {
            served.Add(new ServedPrediction($"{1000 + i}", 1, "champion", Binary(i < 100 ? 0.2 : 0.8), s_day.AddDays(1)));
            labels.Add(new ObservedOutcome($"{1000 + i}", i < 30 || i is >= 100 and < 170 ? "1" : "0", s_day.AddDays(1).AddHours(2)));
        }

        foreach (var (p, i) in new[] { (0.9, 0), (0.8, 1), (0.3, 2), (0.1, 3) })
        {
            served.Add(new ServedPrediction($"{2000 + i}", 1, "champion", Binary(p), s_day.AddDays(2)));
        }

        var (metrics, notices) = OutcomeMetrics.Compute(served, labels, TimeSpan.FromDays(1), null, "scores", "events", "label");

        var days = metrics.GroupBy(m => m.WindowStart.Day).ToDictionary(g => g.Key, g => g.ToList());
        Assert.Equal(0.4149, Metric(days[2], "log_loss")!.Value, 4);
        Assert.Equal(OutcomeMetricNames.Classifier, days[2].Select(m => m.Metric));
        Assert.Equal(0.10, Metric(days[3], "ece")!.Value, 9);
        Assert.Equal(0.70, Metric(days[3], "roc_auc")!.Value, 9);
        Assert.Equal(0.825, Metric(days[4], "cbpe_accuracy")!.Value, 9);
        Assert.All(days[4], m => Assert.Equal((0L, 0.0), (m.NLabeled, m.Coverage)));
        Assert.Null(Metric(days[4], "accuracy"));
        Assert.Empty(notices);
    }

    [Fact]
    public void A_label_grades_the_prediction_in_force_when_it_was_observed_and_duplicates_keep_the_latest()
    {
        // Key 1: served wrong at 10:00, labelled 1 at 11:00, served again (right) at 12:00: the label grades the first.
        var served = new List<ServedPrediction>
        {
            new("1", 1, "champion", Binary(0.1), s_day), new("1", 2, "champion", Binary(0.9), s_day.AddHours(2)),
        };
        var labels = new List<ObservedOutcome> { new("1", "0", s_day.AddMinutes(30)), new("1", "1", s_day.AddHours(1)), new("7", "1", s_day) };

        var (metrics, notices) = OutcomeMetrics.Compute(served, labels, TimeSpan.FromDays(1), null, "scores", "events", "label");
        var (early, _) = OutcomeMetrics.Compute(served, labels, TimeSpan.FromDays(1), s_day.AddMinutes(45), "scores", "events", "label");

        Assert.Equal(0.0, metrics.Single(m => m.Version == 1 && m.Metric == "accuracy").Value);
        Assert.Equal((0L, 0.0), metrics.Where(m => m.Version == 2).Select(m => (m.NLabeled, m.Coverage)).Distinct().Single());
        Assert.Equal(["1 outcome(s) of events repeat a key: the latest observation of each key is used.",
            "1 outcome(s) of events match no prediction of scores scored at or before they were observed: they are not counted."], notices);
        Assert.Equal(1.0, early.Single(m => m.Metric == "accuracy").Value); // as of 10:45 the label said 0, and 0 was predicted
    }

    [Fact]
    public void Labels_the_model_cannot_be_compared_with_fail_with_a_message()
    {
        var served = new List<ServedPrediction> { new("1", 1, "champion", Binary(0.9), s_day) };
        var regressor = new List<ServedPrediction> { new("1", 1, "champion", new JsonObject { ["variable"] = 1.5 }, s_day) };
        var words = new List<ObservedOutcome> { new("1", "churned", s_day.AddHours(1)) };

        var classes = Assert.Throws<ModelAsDataException>(() => OutcomeMetrics.Compute(served, words, TimeSpan.FromDays(1), null, "scores", "events", "label"));
        var numbers = Assert.Throws<ModelAsDataException>(() => OutcomeMetrics.Compute(regressor, words, TimeSpan.FromDays(1), null, "scores", "events", "label"));

        Assert.Contains("No label in column label of events is one of the classes of scores's model (labels such as 'churned', classes such as '1')", classes.Message, StringComparison.Ordinal);
        Assert.Contains("holds labels that are not numbers, and scores's model is a regressor", numbers.Message, StringComparison.Ordinal);
    }
}

using ModelAsData.Core;
using ModelAsData.Core.Export;

namespace ModelAsData.Tests.Core;

/// <summary>The export's counts (docs/EXPORT.md "Cutoff, new and old, mix and rows"): exact mixes, the largest mix, the errors.</summary>
public sealed class TrainingSetPlanTests
{
    private static readonly DateTimeOffset s_since = new(2026, 11, 1, 0, 0, 0, TimeSpan.Zero);

    private static TrainingSetRequest Request(double? mix = null, long? rows = null, double holdout = 0) =>
        new() { PredictionTable = "churn_scores", Out = "train.csv", NewSince = mix is null ? null : s_since, Mix = mix, Rows = rows, Holdout = holdout };

    [Fact]
    public void A_half_mix_of_10000_rows_is_5000_and_5000()
    {
        var plan = TrainingSetPlan.Choose(Request(0.5, 10_000), 7_000, 20_000, 0, 0);
        Assert.Equal((5_000L, 5_000L, 0L), (plan.Training.New, plan.Training.Old, plan.Holdout.Rows));
    }

    [Fact]
    public void Each_file_gets_the_mix_exactly_and_the_holdout_its_share_of_the_rows()
    {
        var plan = TrainingSetPlan.Choose(Request(0.3, 1_001, holdout: 0.2), 5_000, 5_000, 1_000, 1_000);
        Assert.Equal(801L, plan.Training.Rows);   // round(1001 × 0.8) = 800.8 → 801
        Assert.Equal((240L, 561L), (plan.Training.New, plan.Training.Old));   // round(801 × 0.3) = 240.3 → 240
        Assert.Equal((60L, 140L), (plan.Holdout.New, plan.Holdout.Old));
    }

    [Fact]
    public void Without_rows_the_mix_takes_the_largest_exact_set()
    {
        var plan = TrainingSetPlan.Choose(Request(0.5), 3_000, 20_000, 0, 0);
        Assert.Equal((3_000L, 3_000L), (plan.Training.New, plan.Training.Old));
    }

    [Fact]
    public void Too_few_rows_of_a_kind_fail_naming_the_counts_and_the_most_possible()
    {
        var e = Assert.Throws<ModelAsDataException>(() => TrainingSetPlan.Choose(Request(0.5, 10_000), 3_000, 20_000, 0, 0));
        Assert.Equal(ErrorCode.InvalidArgument, e.Code);
        Assert.Contains("5,000 new + 5,000 old", e.Message, StringComparison.Ordinal);
        Assert.Contains("3,000 new and 20,000 old", e.Message, StringComparison.Ordinal);
        Assert.Contains("--rows 6000 or fewer", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void No_new_rows_at_all_fail_for_a_mix_that_needs_them()
    {
        var e = Assert.Throws<ModelAsDataException>(() => TrainingSetPlan.Choose(Request(0.5), 0, 20_000, 0, 0));
        Assert.Contains("0 new and 20,000 old", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Without_a_mix_rows_is_a_cap_split_by_the_holdout()
    {
        var all = TrainingSetPlan.Choose(Request(), 100, 700, 20, 180);
        var capped = TrainingSetPlan.Choose(Request(rows: 500, holdout: 0.2), 100, 700, 20, 180);
        Assert.Equal((800L, 200L, false), (all.Training.Rows, all.Holdout.Rows, all.ByKind));
        Assert.Equal((400L, 100L), (capped.Training.Rows, capped.Holdout.Rows));
    }

    [Theory]
    [InlineData(1.5, null, 0.0, "between 0 and 1")]
    [InlineData(null, 0L, 0.0, "must be positive")]
    [InlineData(null, null, 1.0, "below 1")]
    public void Bad_options_are_refused_before_anything_is_read(double? mix, long? rows, double holdout, string message)
    {
        var e = Assert.Throws<ModelAsDataException>(() => Request(mix, rows, holdout).Validate());
        Assert.Contains(message, e.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("online:churn", null)]
    [InlineData("online:Churn; DROP TABLE x", "model")]
    [InlineData("online:", "model")]
    [InlineData("churn:online", "prediction table")]
    public void A_models_online_traffic_is_named_online_colon_model(string name, string? refused)
    {
        // 051: 'online:<model>' names a model's online requests; the model part is checked as a model's name.
        var request = Request() with { PredictionTable = name };
        var e = Record.Exception(request.Validate);
        if (refused is null)
        {
            Assert.Null(e);
        }
        else
        {
            Assert.Contains(refused, Assert.IsType<ModelAsDataException>(e).Message, StringComparison.Ordinal);
        }
    }

    [Fact]
    public void Files_sit_beside_the_training_file()
    {
        Assert.Equal(Path.Combine("out", "train.holdout.csv"), TrainingSetFiles.Holdout(Path.Combine("out", "train.csv")));
        Assert.Equal("train.manifest.json", TrainingSetFiles.Manifest("train.parquet"));
    }
}

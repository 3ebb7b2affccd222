using System.Globalization;

namespace ModelAsData.Core.Export;

/// <summary>How many rows of one kind (old or new) a part has to choose from, and how many it takes.</summary>
public readonly record struct PartCounts(long AvailableNew, long AvailableOld, long New, long Old)
{
    public long Available => AvailableNew + AvailableOld;

    public long Rows => New + Old;
}

/// <summary>
/// How many rows each file takes (docs/EXPORT.md "Mix and rows"). Rows are split into a training pool and a holdout
/// pool by the key's seeded hash; within a pool each kind's rows are taken in hash order. With a mix the counts are
/// exact: N rows are <c>round(N × (1 − holdout))</c> training rows and the rest holdout, and each file's new rows are
/// <c>round(its rows × mix)</c>. Without <c>--rows</c> N is the largest such that every pool has enough; with it N is
/// <c>--rows</c>, or an error naming the counts. Without a mix every eligible row is taken (up to <c>--rows</c>, split
/// by the same rounding).
/// </summary>
public sealed record TrainingSetPlan(PartCounts Training, PartCounts Holdout, bool ByKind)
{
    public long Rows => Training.Rows + Holdout.Rows;

    /// <summary>The plan for the pools' counts (training new/old, holdout new/old) under the request's mix, rows and holdout.</summary>
    public static TrainingSetPlan Choose(TrainingSetRequest request, long trainingNew, long trainingOld, long holdoutNew, long holdoutOld)
    {
        ArgumentNullException.ThrowIfNull(request);
        var available = trainingNew + trainingOld + holdoutNew + holdoutOld;
        if (available == 0)
        {
            throw new ModelAsDataException(ErrorCode.NotFound,
                $"No labelled rows to export from {request.PredictionTable}: no outcome observed at or before the cutoff has a row in the source table.");
        }

        if (request.Mix is not { } mix)
        {
            var training = trainingNew + trainingOld;
            var holdout = holdoutNew + holdoutOld;
            if (request.Rows is { } cap && cap < available)
            {
                var (wantTraining, wantHoldout) = Split(cap, request.Holdout);
                training = Math.Min(training, wantTraining);
                holdout = Math.Min(holdout, wantHoldout);
            }

            // Without a mix the kinds are not chosen apart: each file takes its first rows in hash order.
            return new TrainingSetPlan(new PartCounts(trainingNew, trainingOld, training, 0), new PartCounts(holdoutNew, holdoutOld, holdout, 0), ByKind: false);
        }

        if (request.Rows is { } rows)
        {
            var plan = Mixed(rows, request.Holdout, mix, trainingNew, trainingOld, holdoutNew, holdoutOld);
            if (!Fits(plan))
            {
                throw NotEnough(request, plan, Largest(request.Holdout, mix, trainingNew, trainingOld, holdoutNew, holdoutOld, available));
            }

            return plan;
        }

        var most = Largest(request.Holdout, mix, trainingNew, trainingOld, holdoutNew, holdoutOld, available);
        if (most == 0)
        {
            throw NotEnough(request, Mixed(1, request.Holdout, mix, trainingNew, trainingOld, holdoutNew, holdoutOld), 0);
        }

        return Mixed(most, request.Holdout, mix, trainingNew, trainingOld, holdoutNew, holdoutOld);
    }

    /// <summary>N rows as (training, holdout): training is N × (1 − holdout) rounded half away from zero.</summary>
    public static (long Training, long Holdout) Split(long rows, double holdout)
    {
        var training = (long)Math.Round(rows * (1 - holdout), MidpointRounding.AwayFromZero);
        return (training, rows - training);
    }

    private static TrainingSetPlan Mixed(long rows, double holdout, double mix, long trainingNew, long trainingOld, long holdoutNew, long holdoutOld)
    {
        var (training, held) = Split(rows, holdout);
        var newTraining = (long)Math.Round(training * mix, MidpointRounding.AwayFromZero);
        var newHeld = (long)Math.Round(held * mix, MidpointRounding.AwayFromZero);
        return new TrainingSetPlan(new PartCounts(trainingNew, trainingOld, newTraining, training - newTraining),
                                   new PartCounts(holdoutNew, holdoutOld, newHeld, held - newHeld), ByKind: true);
    }

    private static bool Fits(TrainingSetPlan plan) => Fits(plan.Training) && Fits(plan.Holdout);

    private static bool Fits(PartCounts part) => part.New <= part.AvailableNew && part.Old <= part.AvailableOld;

    /// <summary>The largest N whose exact mix every pool can give (0 if none).</summary>
    private static long Largest(double holdout, double mix, long trainingNew, long trainingOld, long holdoutNew, long holdoutOld, long available)
    {
        // Each pool bounds N by its count over its share; rounding can move the true largest a little either side.
        var bound = (double)available;
        foreach (var (count, share) in new[] { (trainingNew, (1 - holdout) * mix), (trainingOld, (1 - holdout) * (1 - mix)), (holdoutNew, holdout * mix), (holdoutOld, holdout * (1 - mix)) })
        {
            if (share > 0)
            {
                bound = Math.Min(bound, (count + 1) / share);
            }
        }

        for (var rows = Math.Min(available, (long)Math.Ceiling(bound) + 2); rows > 0; rows--)
        {
            if (Fits(Mixed(rows, holdout, mix, trainingNew, trainingOld, holdoutNew, holdoutOld)))
            {
                return rows;
            }
        }

        return 0;
    }

    private static ModelAsDataException NotEnough(TrainingSetRequest request, TrainingSetPlan wanted, long most)
    {
        var c = CultureInfo.InvariantCulture;
        var asked = request.Rows is { } rows ? string.Create(c, $"{rows:N0} rows") : "any rows";
        var need = request.Holdout > 0
            ? string.Create(c, $"{wanted.Training.New:N0} new + {wanted.Training.Old:N0} old in training and {wanted.Holdout.New:N0} + {wanted.Holdout.Old:N0} in the holdout")
            : string.Create(c, $"{wanted.Training.New:N0} new + {wanted.Training.Old:N0} old");
        var have = request.Holdout > 0
            ? string.Create(c, $"{wanted.Training.AvailableNew:N0} new and {wanted.Training.AvailableOld:N0} old in the training pool, {wanted.Holdout.AvailableNew:N0} and {wanted.Holdout.AvailableOld:N0} in the holdout pool")
            : string.Create(c, $"{wanted.Training.AvailableNew:N0} new and {wanted.Training.AvailableOld:N0} old");
        var advice = most > 0
            ? string.Create(c, $"At most {most:N0} rows can be mixed so: ask --rows {most} or fewer, or change --mix.")
            : "Change --mix or --new-since, or wait for more labels.";
        return new ModelAsDataException(ErrorCode.InvalidArgument,
            string.Create(c, $"A {request.Mix * 100:0.##} % mix of {asked} needs {need}; there are {have} (new: observed at or after {request.NewSince!.Value.UtcDateTime:O}). {advice}"));
    }
}

namespace ModelAsData.Core.Export;

/// <summary>
/// Where an export writes beside its <c>--out</c> file: <c>train.csv</c> → holdout <c>train.holdout.csv</c>, manifest
/// <c>train.manifest.json</c>. Each file is first written as <c>&lt;name&gt;.partial</c> and renamed when complete, so
/// a failed export leaves no file that looks finished.
/// </summary>
public static class TrainingSetFiles
{
    public static string Holdout(string training) => WithSuffix(training, ".holdout" + Path.GetExtension(training));

    public static string Manifest(string training) => WithSuffix(training, ".manifest.json");

    public static string Partial(string file) => file + ".partial";

    private static string WithSuffix(string training, string suffix)
    {
        var directory = Path.GetDirectoryName(training);
        var name = Path.GetFileNameWithoutExtension(training) + suffix;
        return string.IsNullOrEmpty(directory) ? name : Path.Combine(directory, name);
    }
}

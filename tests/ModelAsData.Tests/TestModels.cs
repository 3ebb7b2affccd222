namespace ModelAsData.Tests;

/// <summary>
/// The real ONNX models the tests score: the public projects' files in shared/models/external (beside the repository
/// in CI), and the ones the project ships in models/.
/// </summary>
internal static class TestModels
{
    private static readonly Lazy<string> s_external = new(() => Find(Path.Combine("shared", "models", "external"), "MANIFEST.md"));
    private static readonly Lazy<string> s_shipped = new(() => Find("models", "skl2onnx_rf_iris.onnx"));

    public static string External(string file) => Path.Combine(s_external.Value, file);

    public static string Shipped(string file) => Path.Combine(s_shipped.Value, file);

    public static byte[] ExternalBytes(string file) => File.ReadAllBytes(External(file));

    private static string Find(string relative, string marker)
    {
        // MAD_SHARED names the shared folder when the repository is not cloned beside it (test.sh checks it).
        if (relative.StartsWith("shared", StringComparison.Ordinal) && Environment.GetEnvironmentVariable("MAD_SHARED") is { Length: > 0 } shared)
        {
            return Path.Combine(shared, Path.GetRelativePath("shared", relative));
        }

        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            var candidate = Path.Combine(dir.FullName, relative);
            if (File.Exists(Path.Combine(candidate, marker)))
            {
                return candidate;
            }
        }

        throw new DirectoryNotFoundException(
            $"No '{relative}' folder with {marker} above {AppContext.BaseDirectory}: the tests need the repository's models/ and shared/models/external beside the repository.");
    }
}

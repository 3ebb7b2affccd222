namespace ModelAsData.IntegrationTests.Infrastructure;

/// <summary>
/// The real ONNX files of <c>shared/models/external</c> (made by public projects; see its MANIFEST.md). Found by
/// walking up from the test binaries: in development <c>shared/</c> sits beside the worktrees, in CI beside the repo.
/// </summary>
public static class TestModels
{
    private static readonly Lazy<string> s_folder = new(Find);

    public static string Folder => s_folder.Value;

    /// <summary>Models ONNX Runtime loads, by file name relative to <see cref="Folder"/>.</summary>
    public static IReadOnlyList<string> Loadable { get; } =
    [
        "skl2onnx_logreg_iris.onnx",
        "skl2onnx_rf_iris.onnx",
        "skl2onnx_pipeline_titanic_nozipmap.onnx",
        "onnxmltools_xgboost_regressor.onnx",
        "skl2onnx_2018_gbr_batch1.onnx",
        "skl2onnx_2018_gbc_strlabels_batch1.onnx",
        "mnist-8/model.onnx",
        "pytorch_image_classifier32.onnx",
    ];

    /// <summary>A valid protobuf using a custom op plain ONNX Runtime does not have: rejected at session creation.</summary>
    public const string CustomOp = "ortext_custom_op_negpos.onnx";

    public static byte[] Bytes(string file) => File.ReadAllBytes(Path.Combine(Folder, file));

    private static string Find()
    {
        // MAD_SHARED names the shared folder when the repository is not cloned beside it (test.sh checks it).
        if (Environment.GetEnvironmentVariable("MAD_SHARED") is { Length: > 0 } shared)
        {
            return Path.Combine(shared, "models", "external");
        }

        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            var candidate = Path.Combine(dir.FullName, "shared", "models", "external");
            if (Directory.Exists(candidate))
            {
                return candidate;
            }
        }

        throw new DirectoryNotFoundException(
            $"No shared/models/external above {AppContext.BaseDirectory}: clone the shared folder beside the repository (../shared/models/external).");
    }
}

using Microsoft.ML.OnnxRuntime;

namespace ModelAsData.Core.Onnx;

/// <summary>Process-wide ONNX Runtime settings, applied once before the first session.</summary>
internal static class OnnxRuntimeSetup
{
    private static readonly Lazy<bool> s_initialised = new(() =>
    {
        var environment = OrtEnv.Instance();
        environment.DisableTelemetryEvents();
        return true;
    });

    public static void EnsureInitialised() => _ = s_initialised.Value;
}

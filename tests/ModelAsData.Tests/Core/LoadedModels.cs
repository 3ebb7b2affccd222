using System.Security.Cryptography;
using ModelAsData.Core.Onnx;

namespace ModelAsData.Tests.Core;

/// <summary>Real models from shared/models/external, loaded once per test run through the shared cache.</summary>
internal static class LoadedModels
{
    public static OnnxModel Load(string externalFile)
    {
        var bytes = TestModels.ExternalBytes(externalFile);
        return ModelCache.Shared.GetOrLoad(Convert.ToHexStringLower(SHA256.HashData(bytes)), () => bytes);
    }

    public static OnnxModel RandomForestIris => Load("skl2onnx_rf_iris.onnx");

    public static OnnxModel Titanic => Load("skl2onnx_pipeline_titanic_nozipmap.onnx");
}

namespace ModelAsData.Core;

/// <summary>The demo's ONNX models (models/ of the repository), which ship beside the <c>mad</c> binary; <c>mad demo</c> and <c>mad bench</c> load them.</summary>
public static class ShippedModels
{
    /// <summary>The models folder shipped beside the binary, or the repository's when run from a checkout.</summary>
    public static string Path(string file)
    {
        foreach (var folder in new[] { System.IO.Path.Combine(AppContext.BaseDirectory, "models"), System.IO.Path.Combine(Environment.CurrentDirectory, "models") })
        {
            if (File.Exists(System.IO.Path.Combine(folder, file)))
            {
                return System.IO.Path.Combine(folder, file);
            }
        }

        throw new ModelAsDataException(ErrorCode.NotFound, $"The demo model {file} is missing from {System.IO.Path.Combine(AppContext.BaseDirectory, "models")}: rebuild with dotnet build.");
    }
}

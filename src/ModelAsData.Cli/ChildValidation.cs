using System.Diagnostics;
using System.Text.Json.Nodes;
using ModelAsData.Core;
using ModelAsData.Core.Onnx;
using ModelAsData.Core.Registry;

namespace ModelAsData.Cli;

/// <summary>
/// Validates a large model file in a child process of this CLI (<c>mad models validate FILE</c>, hidden), as
/// PostgreSQL validates in the sidecar: ONNX Runtime needs about twice the model to build a session, and that peak
/// is the child's, which exits when done, so the pushing process stays small whatever the model's size. The child
/// loads the file exactly as in-process validation does (<see cref="OnnxModel.LoadFile"/>) and prints one line,
/// <see cref="Marker"/> and JSON: the signature and the sha256 it loaded, or the error's code and words, which are
/// thrown here as they would have been thrown in-process. A child that dies before that line stores nothing.
/// </summary>
public sealed class ChildValidation : IModelFileValidator
{
    /// <summary>Starts the child's one result line on its stdout, so that anything else it prints is ignored.</summary>
    public const string Marker = "mad-validate ";

    private const int TailChars = 2000;

    private readonly string _host;
    private readonly string[] _prefix;

    private ChildValidation(string host, string[] prefix)
    {
        _host = host;
        _prefix = prefix;
    }

    /// <summary>
    /// The <c>mad</c> this code runs from: the <c>mad</c> binary itself when it is the running process, else
    /// <c>dotnet mad.dll</c> (under <c>dotnet mad.dll</c>, or a test host that loaded the CLI). Null when there is no
    /// <c>mad.dll</c> to start (a single-file or trimmed host): the caller then validates in-process.
    /// </summary>
    public static ChildValidation? Find()
    {
        var dll = typeof(ChildValidation).Assembly.Location;
        if (string.IsNullOrEmpty(dll) || !File.Exists(dll))
        {
            return null;
        }

        var running = Environment.ProcessPath;
        if (running is not null && Path.GetFileNameWithoutExtension(running) == Path.GetFileNameWithoutExtension(dll)
            && Path.GetDirectoryName(running) == Path.GetDirectoryName(dll))
        {
            return new ChildValidation(running, []);
        }

        var dotnet = running is not null && Path.GetFileNameWithoutExtension(running) == "dotnet"
            ? running
            : Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") is { Length: > 0 } host && File.Exists(host) ? host : OnPath("dotnet");
        return dotnet is null ? null : new ChildValidation(dotnet, [dll]);
    }

    /// <summary>What the child prints for a loaded model.</summary>
    public static string Result(OnnxModel model) =>
        Marker + new JsonObject { ["sha256"] = model.Sha256, ["signature"] = JsonNode.Parse(model.Signature.ToJson()) }.ToJsonString();

    /// <summary>What the child prints for an error: a <see cref="ModelAsDataException"/> keeps its code.</summary>
    public static string Result(Exception error) =>
        Marker + new JsonObject
        {
            ["error"] = new JsonObject { ["code"] = error is ModelAsDataException m ? m.Code.ToString() : null, ["message"] = error.Message },
        }.ToJsonString();

    public async Task<ModelSignature> ValidateAsync(string path, string sha256, CancellationToken cancellationToken)
    {
        var start = new ProcessStartInfo(_host) { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true, RedirectStandardInput = true };
        foreach (var arg in (string[])[.. _prefix, "models", "validate", Path.GetFullPath(path)])
        {
            start.ArgumentList.Add(arg);
        }

        using var child = Process.Start(start) ?? throw new IOException($"Could not start {_host} to validate {path}.");
        child.StandardInput.Close();
        var output = child.StandardOutput.ReadToEndAsync(cancellationToken);
        var error = child.StandardError.ReadToEndAsync(cancellationToken);
        try
        {
            await child.WaitForExitAsync(cancellationToken);
            await Task.WhenAll(output, error);
        }
        catch (OperationCanceledException)
        {
            child.Kill(entireProcessTree: true);
            throw;
        }

        var line = (await output).Split('\n').LastOrDefault(l => l.StartsWith(Marker, StringComparison.Ordinal));
        if (line is null)
        {
            throw new ModelAsDataException(ErrorCode.InvalidModel, Died(path, child, await error));
        }

        var result = JsonNode.Parse(line[Marker.Length..])!;
        if (result["error"] is { } failed)
        {
            var message = (string)failed["message"]!;
            throw failed["code"] is { } code ? new ModelAsDataException(Enum.Parse<ErrorCode>((string)code!), message) : new IOException(message);
        }

        if ((string?)result["sha256"] != sha256)
        {
            throw new ModelAsDataException(ErrorCode.InvalidModel,
                $"{path} changed while it was pushed (sha256 {sha256[..12]}… when hashed, {((string?)result["sha256"] ?? "?").PadRight(12)[..12]}… when validated); nothing was stored. Push it again once nothing writes to it.");
        }

        return ModelSignature.FromJson(result["signature"]!.ToJsonString());
    }

    private static string Died(string path, Process child, string stderr)
    {
        var how = child.ExitCode > 128
            ? $"was killed by signal {child.ExitCode - 128}{(child.ExitCode == 137 ? " (SIGKILL, e.g. from the kernel when memory runs out: ONNX Runtime needs about twice the model's size)" : "")}"
            : $"exited with code {child.ExitCode}";
        var tail = stderr.Trim() is { Length: > 0 } said ? $" It said: {(said.Length > TailChars ? "…" + said[^TailChars..] : said)}" : "";
        return $"The process validating {path} with ONNX Runtime (mad models validate, pid {child.Id}) {how} before it gave a result; nothing was stored. Push it again; if it fails the same way, free memory or run `mad models validate {path}` to see why.{tail}";
    }

    private static string? OnPath(string name) =>
        (Environment.GetEnvironmentVariable("PATH") ?? "").Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries)
            .Select(folder => Path.Combine(folder, name))
            .FirstOrDefault(File.Exists);
}

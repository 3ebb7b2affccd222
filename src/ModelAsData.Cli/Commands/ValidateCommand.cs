using System.CommandLine;
using ModelAsData.Core.Onnx;

namespace ModelAsData.Cli.Commands;

/// <summary>
/// <c>mad models validate FILE</c>, hidden: the child process a SQLite push of a large file starts
/// (<see cref="ChildValidation"/>). It loads the file with ONNX Runtime as in-process validation does, prints one
/// line (<see cref="ChildValidation.Marker"/> and JSON) on stdout and exits 0, whether the model loads or not; any
/// other exit is a crash.
/// </summary>
internal static class ValidateCommand
{
    public static Command Create()
    {
        var file = new Argument<FileInfo>("file") { Description = "The .onnx file to load with ONNX Runtime." };
        var command = new Command("validate", "Load an .onnx file with ONNX Runtime and print its signature or the error as one JSON line (used by `mad models push` on SQLite).")
        {
            file,
        };
        command.Hidden = true;
        command.SetAction(parse =>
        {
            string result;
            try
            {
                using var model = OnnxModel.LoadFile(parse.GetValue(file)!.FullName, ModelCache.Shared.Options);
                result = ChildValidation.Result(model);
            }
            catch (Exception e)
            {
                result = ChildValidation.Result(e);
            }

            Console.Out.WriteLine(result);
            Console.Out.Flush();
            return 0;
        });
        return command;
    }
}

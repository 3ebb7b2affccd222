using ModelAsData.Cli;
using Spectre.Console;

if (Console.IsOutputRedirected)
{
    // Piped or captured output has no terminal width to read: keep tables and SQL on one line each.
    AnsiConsole.Profile.Width = 160;
}

return await MadCommand.Create(AnsiConsole.Console).Parse(args).InvokeAsync();

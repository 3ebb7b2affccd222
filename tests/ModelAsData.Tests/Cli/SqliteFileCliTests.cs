using ModelAsData.Tests.Sqlite;

namespace ModelAsData.Tests.Cli;

/// <summary>
/// A CLI test class whose tests run <c>mad</c> against <see cref="Db"/>, a SQLite file in a temp folder of the class's
/// own, and delete the folder when each test ends.
/// </summary>
public abstract class SqliteFileCliTests(string fileName) : IDisposable
{
    protected string Folder { get; } = TempDatabase.NewFolder();

    protected string Db => Path.Combine(Folder, fileName);

    public void Dispose()
    {
        TempDatabase.DeleteFolder(Folder);
        GC.SuppressFinalize(this);
    }
}

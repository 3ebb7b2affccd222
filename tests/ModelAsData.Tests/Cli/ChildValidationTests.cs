using System.Security.Cryptography;
using Dapper;
using Google.Protobuf;
using ModelAsData.Cli;
using ModelAsData.Core;
using ModelAsData.Core.Onnx;
using ModelAsData.Core.Onnx.Proto;
using ModelAsData.Core.Registry;
using ModelAsData.Sqlite;
using ModelAsData.Tests.Sqlite;

namespace ModelAsData.Tests.Cli;

/// <summary>
/// `mad models push` of a file larger than one chunk (16 MiB) to SQLite: ONNX Runtime validates it in a child
/// process (`mad models validate`, the mad.dll beside these tests), so the pushing process never loads it; its
/// errors are the words in-process validation gives. A model of this size validated in-process would stay in the
/// shared cache (it is under 64 MiB), so its absence there says the child validated it.
/// </summary>
[Collection(CliCollection.Name)]
public sealed class ChildValidationTests
{
    [Fact]
    public async Task A_push_above_one_chunk_is_validated_in_a_child_process_and_stored_in_chunks()
    {
        await using var db = await TempDatabase.CreateAsync();
        var path = Path.Combine(db.Folder, "embed.onnx");
        WriteEmbedding(path, rows: 1_200_000); // 19.2 MB of weights: two chunks
        var sha256 = Convert.ToHexStringLower(SHA256.HashData(File.ReadAllBytes(path)));

        var result = await MadRunner.RunAsync("models", "push", "embed", path, "--db", db.Path);

        Assert.True(result.ExitCode == 0, result.ToString());
        Assert.Contains("Pushed embed@1 (", result.Output, StringComparison.Ordinal);
        Assert.Contains("inputs:  ids int64[-1,1]", result.Output, StringComparison.Ordinal);
        Assert.Contains("columns: vector_0, vector_1, vector_2, vector_3", result.Output, StringComparison.Ordinal);
        Assert.False(ModelCache.Shared.Contains(sha256), "the pushing process loaded the model itself");
        var stored = await db.Connection.QuerySingleAsync<(string Status, string Sha256, long Chunks)>("SELECT status, sha256, chunks FROM mad_model_versions");
        Assert.Equal(("ready", sha256, 2L), stored);
        Assert.Equal(["ids"], (await db.Registry.ResolveAsync(ModelReference.Parse("embed@1"))).Signature!.Inputs.Select(i => i.Name));
    }

    [Fact]
    public async Task A_bad_model_above_one_chunk_fails_in_the_child_with_the_in_process_words_and_stores_nothing()
    {
        await using var db = await TempDatabase.CreateAsync();
        var path = Path.Combine(db.Folder, "junk.onnx");
        await File.WriteAllBytesAsync(path, Enumerable.Range(0, 17 * 1024 * 1024).Select(i => (byte)(i * 31 + (i >> 11))).ToArray());
        string inProcess;
        await using (var file = File.OpenRead(path))
        {
            var registry = new SqliteModelRegistry(db.Connection, new ModelCache()); // no FileValidator: the library from C#
            inProcess = (await Assert.ThrowsAsync<ModelAsDataException>(() => registry.PushAsync("junk", file, []))).Message;
        }

        var result = await MadRunner.RunAsync("models", "push", "junk", path, "--db", db.Path);

        Assert.Equal((int)ErrorCode.InvalidModel, result.ExitCode);
        Assert.StartsWith("ONNX Runtime cannot load the model: ", inProcess, StringComparison.Ordinal);
        Assert.Equal($"error: {inProcess}", Flat(result.Output));
        Assert.Equal(0L, await db.Connection.ExecuteScalarAsync<long>("SELECT (SELECT count(*) FROM mad_model_versions) + (SELECT count(*) FROM mad_model_chunks)"));
    }

    [Fact]
    public async Task A_child_killed_while_it_validates_gives_a_clear_error_and_stores_nothing()
    {
        await using var db = await TempDatabase.CreateAsync();
        var path = Path.Combine(db.Folder, "killed.onnx");
        WriteEmbedding(path, rows: 1_200_000);
        var registry = new SqliteModelRegistry(db.Connection, new ModelCache()) { FileValidator = ChildValidation.Find() };
        Assert.NotNull(registry.FileValidator);
        using var stop = new CancellationTokenSource(TimeSpan.FromMinutes(2));
        var killer = KillChildAsync(path, stop.Token);

        ModelAsDataException refused;
        await using (var file = File.OpenRead(path))
        {
            refused = await Assert.ThrowsAsync<ModelAsDataException>(() => registry.PushAsync("killed", file, []));
        }

        await stop.CancelAsync();
        Assert.True(await killer, "the test never saw the child to kill it");
        Assert.Equal(ErrorCode.InvalidModel, refused.Code);
        Assert.Contains($"The process validating {path} with ONNX Runtime (mad models validate, pid ", refused.Message, StringComparison.Ordinal);
        Assert.Contains(") was killed by signal 9 (SIGKILL", refused.Message, StringComparison.Ordinal);
        Assert.Contains("before it gave a result; nothing was stored.", refused.Message, StringComparison.Ordinal);
        Assert.Equal(0L, await db.Connection.ExecuteScalarAsync<long>("SELECT (SELECT count(*) FROM mad_model_versions) + (SELECT count(*) FROM mad_model_chunks)"));
    }

    /// <summary>SIGKILLs the process whose command line is `… models validate <paramref name="path"/>` as soon as it appears; true once it did.</summary>
    private static async Task<bool> KillChildAsync(string path, CancellationToken cancellationToken)
    {
        var wanted = $"\0models\0validate\0{path}\0";
        while (!cancellationToken.IsCancellationRequested)
        {
            foreach (var folder in Directory.EnumerateDirectories("/proc").Where(f => int.TryParse(Path.GetFileName(f), out _)))
            {
                string line;
                try
                {
                    line = "\0" + await File.ReadAllTextAsync(Path.Combine(folder, "cmdline"), CancellationToken.None);
                }
                catch (IOException)
                {
                    continue; // it exited meanwhile
                }
                catch (UnauthorizedAccessException)
                {
                    continue;
                }

                if (line.Contains(wanted, StringComparison.Ordinal))
                {
                    using var child = System.Diagnostics.Process.GetProcessById(int.Parse(Path.GetFileName(folder), System.Globalization.CultureInfo.InvariantCulture));
                    child.Kill();
                    return true;
                }
            }

            await Task.Delay(5, CancellationToken.None);
        }

        return false;
    }

    /// <summary>The console wraps long lines; the words are what count.</summary>
    private static string Flat(string output) => string.Join(' ', output.Split((char[])['\n', '\r', ' '], StringSplitOptions.RemoveEmptyEntries));

    /// <summary><c>vector = Flatten(Gather(E, ids))</c> with a float table <c>E[rows, 4]</c>, as Large/LargeModelFile but small enough to build in memory.</summary>
    private static void WriteEmbedding(string path, int rows)
    {
        var weights = new byte[rows * 16];
        Random.Shared.NextBytes(weights); // a model of its own: no other test has its sha256
        var model = new ModelProto
        {
            IrVersion = 8,
            OpsetImport = { new OperatorSetIdProto { Domain = "", Version = 13 } },
            Graph = new GraphProto
            {
                Name = "embed",
                Node =
                {
                    new NodeProto { OpType = "Gather", Name = "gather", Input = { "embedding", "ids" }, Output = { "g" } },
                    new NodeProto { OpType = "Flatten", Name = "flatten", Input = { "g" }, Output = { "vector" } },
                },
                Initializer = { new TensorProto { Name = "embedding", DataType = 1, Dims = { rows, 4 }, RawData = ByteString.CopyFrom(weights) } },
                Input = { Value("ids", 7, 1) },
                Output = { Value("vector", 1, 4) },
            },
        };
        File.WriteAllBytes(path, model.ToByteArray());
    }

    private static ValueInfoProto Value(string name, int elementType, long width) => new()
    {
        Name = name,
        Type = new TypeProto
        {
            TensorType = new TypeProto.Types.Tensor
            {
                ElemType = elementType,
                Shape = new TensorShapeProto { Dim = { new TensorShapeProto.Types.Dimension { DimParam = "N" }, new TensorShapeProto.Types.Dimension { DimValue = width } } },
            },
        },
    };
}

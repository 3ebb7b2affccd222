using System.Security.Cryptography;
using Dapper;
using ModelAsData.Core;
using ModelAsData.Core.Onnx;
using ModelAsData.Core.Registry;
using ModelAsData.Sqlite;
using ModelAsData.Tests.Onnx;

namespace ModelAsData.Tests.Sqlite;

/// <summary>
/// A file larger than one chunk pushed to the embedded store (what `mad models push` does with a large model): ONNX
/// Runtime validates it from its path, and its chunks are copied from the file, never from a copy of it. The chunk
/// size is made small here so that real test models walk the path a 300 MB model takes (Large/LargeModelTests).
/// Each test has a cache of its own, so the model is loaded from the file, not found loaded by another test.
/// </summary>
public sealed class SqliteFilePushTests
{
    [Fact]
    public async Task A_file_is_validated_from_its_path_stored_in_chunks_and_scores_after_a_reopen()
    {
        await using var db = await TempDatabase.CreateAsync();
        using var cache = new ModelCache();
        var registry = new SqliteModelRegistry(db.Connection, cache) { ChunkBytes = 1024 };
        var path = RowTensorTests.Made("cnn_uint8.onnx");

        ModelVersion pushed;
        await using (var file = File.OpenRead(path))
        {
            pushed = await registry.PushAsync("digits", file, []);
        }

        var chunks = await db.Connection.QuerySingleAsync<(long Chunks, long Rows, long Bytes)>(
            "SELECT v.chunks, (SELECT count(*) FROM mad_model_chunks), (SELECT sum(length(bytes)) FROM mad_model_chunks) FROM mad_model_versions v");
        Assert.Equal((VersionStatus.Ready, Convert.ToHexStringLower(SHA256.HashData(File.ReadAllBytes(path)))), (pushed.Status, pushed.Sha256));
        Assert.Equal(["image"], pushed.Signature!.Inputs.Select(i => i.Name));
        Assert.Equal((10L, 10L, new FileInfo(path).Length), chunks);
        Assert.Equal(File.ReadAllBytes(path), await new SqliteModelRegistry(db.Connection, new ModelCache()).LoadBytesAsync("digits", 1));
    }

    [Fact]
    public async Task A_chunked_version_is_loaded_through_a_checked_temporary_file_and_a_corrupt_chunk_is_not_loaded()
    {
        await using var db = await TempDatabase.CreateAsync();
        var registry = new SqliteModelRegistry(db.Connection, new ModelCache()) { ChunkBytes = 1024 };
        await using (var file = File.OpenRead(RowTensorTests.Made("token_mean.onnx")))
        {
            await registry.PushAsync("tokens", file, []);
        }

        var version = await registry.ResolveAsync(ModelReference.Parse("tokens@1"));
        var temp = Directory.GetFiles(Path.GetTempPath(), "mad-model-*.onnx").ToHashSet();
        using (var cache = new ModelCache())
        {
            var loaded = registry.LoadModel(version, cache);
            Assert.Equal((version.Sha256, "ids"), (loaded.Sha256, loaded.Signature.Inputs[0].Name));
        }

        Assert.Subset(temp, Directory.GetFiles(Path.GetTempPath(), "mad-model-*.onnx").ToHashSet()); // its temporary file is gone
        await db.Connection.ExecuteAsync("UPDATE mad_model_chunks SET bytes = zeroblob(length(bytes)) WHERE n = 2");
        using var fresh = new ModelCache();
        var corrupt = Assert.Throws<ModelAsDataException>(() => registry.LoadModel(version, fresh));
        Assert.Equal(ErrorCode.InvalidModel, corrupt.Code);
        Assert.StartsWith("Model 'tokens' v1 is corrupt: its bytes have sha256 ", corrupt.Message, StringComparison.Ordinal);
        Assert.False(fresh.Contains(version.Sha256));
    }

    [Fact]
    public async Task A_file_onnx_runtime_refuses_is_not_stored_and_the_error_is_its_reason()
    {
        await using var db = await TempDatabase.CreateAsync();
        var path = Path.Combine(db.Folder, "not_a_model.onnx");
        await File.WriteAllBytesAsync(path, Enumerable.Range(0, 5000).Select(i => (byte)(i * 31)).ToArray());
        var registry = new SqliteModelRegistry(db.Connection, new ModelCache()) { ChunkBytes = 1024 };

        await using var file = File.OpenRead(path);
        var refused = await Assert.ThrowsAsync<ModelAsDataException>(() => registry.PushAsync("junk", file, []));

        Assert.Equal(ErrorCode.InvalidModel, refused.Code);
        Assert.StartsWith("ONNX Runtime cannot load the model: ", refused.Message, StringComparison.Ordinal);
        Assert.Equal(0L, await db.Connection.ExecuteScalarAsync<long>("SELECT (SELECT count(*) FROM mad_model_versions) + (SELECT count(*) FROM mad_model_chunks)"));
    }

    [Fact]
    public async Task A_file_whose_weights_are_in_a_file_beside_it_is_refused_even_when_that_file_is_there()
    {
        // Loaded by its path, ONNX Runtime would read external_data.weights from the folder: the check comes first.
        await using var db = await TempDatabase.CreateAsync();
        var path = Path.Combine(AppContext.BaseDirectory, "TestData", "external_data.onnx");
        Assert.True(File.Exists(Path.Combine(AppContext.BaseDirectory, "TestData", "external_data.weights")));
        var registry = new SqliteModelRegistry(db.Connection, new ModelCache()) { ChunkBytes = 256 };

        await using var file = File.OpenRead(path);
        var refused = await Assert.ThrowsAsync<ModelAsDataException>(() => registry.PushAsync("outside", file, []));

        Assert.Equal(ErrorCode.InvalidModel, refused.Code);
        Assert.Contains("keeps its data in an external file (data_location = EXTERNAL), which is refused", refused.Message, StringComparison.Ordinal);
        Assert.Equal(0L, await db.Connection.ExecuteScalarAsync<long>("SELECT count(*) FROM mad_model_versions"));
    }
}

using System.Security.Cryptography;
using System.Text.Json.Nodes;
using Dapper;
using Microsoft.Data.Sqlite;
using ModelAsData.IntegrationTests.Hostile;
using ModelAsData.IntegrationTests.Postgres;
using ModelAsData.Sidecar;
using ModelAsData.Sidecar.Validation;
using ModelAsData.Sqlite;
using ModelAsData.Sync;

namespace ModelAsData.IntegrationTests.Large;

/// <summary>
/// Large models (docs/LARGE_MODELS.md): a real ~300 MB model pushed in chunks, validated, loaded and scored with the
/// right answer on both stores (mad.predict through a sidecar; a SQLite prediction table); corrupt and missing chunks refused at load; a push that fails half way leaves nothing;
/// a complete version takes no more chunks; a chunked version pulled to a device. The small-model tests chunk a real
/// small model finely (a registry's ChunkBytes), which walks the same code.
/// </summary>
public sealed class LargeModelTests(PostgresDatabase database, LargeModelFile file) : DatabaseTests(database), IClassFixture<LargeModelFile>
{
    private const int SmallChunk = 1000;
    private const string Small = "skl2onnx_rf_iris.onnx";

    [Fact(Timeout = 600_000)]
    public async Task A_300_MB_model_is_pushed_in_chunks_validated_by_a_sidecar_and_scores_the_right_answer_through_mad_predict()
    {
        var model = Sql.UniqueName("embed");
        await Database.DataSource.ExecuteAsync("UPDATE mad.settings SET value = '300000' WHERE name = 'predict_timeout_ms'");
        await using var sidecar = await RunningSidecar.StartAsync(Database.ConnectionString);
        var registry = new PostgresModelRegistry(Database.DataSource);

        ModelVersion pushed;
        await using (var onnx = File.OpenRead(file.Path))
        {
            pushed = await registry.PushAsync(model, onnx, new JsonObject { ["kind"] = "embedding" }, Ct);
        }

        var stored = await Database.DataSource.QueryAsync<(int Chunks, bool Whole, long Bytes, int Rows)>("""
            SELECT v.chunks, v.onnx IS NOT NULL, (SELECT sum(length(c.bytes)) FROM mad.model_chunks c WHERE (c.model, c.version) = (v.model, v.version)),
                   (SELECT count(*)::int FROM mad.model_chunks c WHERE (c.model, c.version) = (v.model, v.version))
            FROM mad.model_versions v WHERE v.model = @model
            """, new { model });
        var ready = await registry.WaitForValidationAsync(model, pushed.Version, TimeSpan.FromMinutes(5), Ct);
        var answers = new List<JsonNode>();
        await using (var connection = await Database.DataSource.OpenConnectionAsync(Ct))
        {
            foreach (var id in new[] { 7L, file.Rows - 1 })
            {
                await using var call = new NpgsqlCommand("CALL mad.predict($1, $2::jsonb, NULL)", connection) { Parameters = { new() { Value = model }, new() { Value = $$"""{"ids": [{{id}}]}""" } } };
                answers.Add(JsonNode.Parse((string)(await call.ExecuteScalarAsync(Ct))!)!);
            }
        }

        Assert.Equal(await Sha256Async(file.Path), pushed.Sha256);
        Assert.Equal(file.Length, pushed.SizeBytes);
        Assert.Equal([(19, false, file.Length, 19)], stored);
        Assert.True(ready.Status == VersionStatus.Ready, $"{ready.Status}: {ready.Reason}");
        Assert.Equal(LargeModelFile.Expected(7), Vector(answers[0]));
        Assert.Equal(LargeModelFile.Expected(file.Rows - 1), Vector(answers[1]));
        Assert.Equal(pushed.Sha256, Convert.ToHexStringLower(SHA256.HashData(await registry.LoadBytesAsync(model, pushed.Version, Ct))));
    }

    [Fact(Timeout = 600_000)]
    public async Task A_300_MB_model_is_stored_in_chunks_in_sqlite_and_predict_scores_it()
    {
        var path = Path.Combine(Path.GetTempPath(), $"mad-large-{Guid.NewGuid():N}.db");
        try
        {
            await using (var registry = await SqliteModelRegistry.OpenAsync(path, Ct))
            {
                ModelVersion pushed;
                await using (var onnx = File.OpenRead(file.Path))
                {
                    pushed = await registry.PushAsync("embed", onnx, [], Ct);
                }

                var stored = await registry.Connection.QuerySingleAsync<(long Chunks, long Whole, long Bytes)>(
                    "SELECT v.chunks, length(v.onnx), (SELECT sum(length(c.bytes)) FROM mad_model_chunks c WHERE c.model = v.model AND c.version = v.version) FROM mad_model_versions v");

                Assert.Equal(VersionStatus.Ready, pushed.Status);
                Assert.Equal(await Sha256Async(file.Path), pushed.Sha256);
                Assert.Equal((19L, 0L, file.Length), stored);
            }

            // A new connection and process-wide cache miss: the bytes are read back from the chunks.
            await using (var reopened = await SqliteModelRegistry.OpenAsync(path, Ct))
            {
                var bytes = await reopened.LoadBytesAsync("embed", 1, Ct);
                Assert.Equal(await Sha256Async(file.Path), Convert.ToHexStringLower(SHA256.HashData(bytes)));
                await reopened.Connection.ExecuteAsync("CREATE TABLE tokens (id INTEGER PRIMARY KEY, ids INTEGER NOT NULL)");
                await reopened.Connection.ExecuteAsync("INSERT INTO tokens VALUES (1, 7), (2, @last)", new { last = file.Rows - 1 });
                var tables = new SqlitePredictionTables(reopened);
                await tables.CreateAsync(new("vectors", "tokens", ["id"], "embed@1", null), Ct);
                var refreshed = await tables.RefreshAsync("vectors", cancellationToken: Ct);
                var rows = (await reopened.Connection.QueryAsync<(double A, double B, double C, double D)>(
                    "SELECT vector_0, vector_1, vector_2, vector_3 FROM mad_out_vectors ORDER BY id")).ToList();

                Assert.Equal((2L, 0L), (refreshed.Rows, refreshed.Failed));
                Assert.Equal(LargeModelFile.Expected(7), new[] { (float)rows[0].A, (float)rows[0].B, (float)rows[0].C, (float)rows[0].D });
                Assert.Equal(LargeModelFile.Expected(file.Rows - 1), new[] { (float)rows[1].A, (float)rows[1].B, (float)rows[1].C, (float)rows[1].D });
            }
        }
        finally
        {
            SqliteConnection.ClearAllPools();
            File.Delete(path);
        }
    }

    [Fact(Timeout = 120_000)]
    public async Task A_corrupt_or_missing_chunk_is_a_clear_error_at_load_and_a_pending_corrupt_version_is_rejected()
    {
        var registry = new PostgresModelRegistry(Database.DataSource) { ChunkBytes = SmallChunk };
        var bytes = TestModels.Bytes(Small);
        var (corrupt, missing, pending) = (Sql.UniqueName("corrupt"), Sql.UniqueName("missing"), Sql.UniqueName("pending"));
        foreach (var model in new[] { corrupt, missing })
        {
            await registry.PushReadyAsync(model, Small);
        }

        await registry.PushAsync(pending, bytes, [], Ct);
        // What a damaged disk or a careless superuser does: one byte of one chunk changed, one chunk gone.
        await Database.DataSource.ExecuteAsync("UPDATE mad.model_chunks SET bytes = set_byte(bytes, 10, get_byte(bytes, 10) # 1) WHERE model = ANY(@models) AND n = 3",
            new { models = new[] { corrupt, pending } });
        await Database.DataSource.ExecuteAsync("DELETE FROM mad.model_chunks WHERE model = @missing AND n = 5", new { missing });

        var damaged = await Assert.ThrowsAsync<ModelAsDataException>(() => registry.LoadBytesAsync(corrupt, 1, Ct));
        var gone = await Assert.ThrowsAsync<ModelAsDataException>(() => registry.LoadBytesAsync(missing, 1, Ct));
        var outcomes = await new PendingVersionValidator(Database.DataSource, new SidecarOptions { SidecarId = "tests" }).ValidatePendingAsync(Ct);
        var rejected = await registry.ResolveAsync(new(pending, null, 1), Ct);

        Assert.Equal(ErrorCode.InvalidModel, damaged.Code);
        Assert.StartsWith($"Model '{corrupt}' v1 is corrupt: its {bytes.Length:N0} stored bytes hash to sha256 ", damaged.Message, StringComparison.Ordinal);
        Assert.EndsWith("; it is not loaded. Push the model again as a new version.", damaged.Message, StringComparison.Ordinal);
        Assert.Equal(ErrorCode.InvalidModel, gone.Code);
        Assert.Contains("chunk 5 is missing", gone.Message, StringComparison.Ordinal);
        Assert.Contains(outcomes, o => o.Model == pending && o.Status == VersionStatus.Rejected);
        Assert.Equal(VersionStatus.Rejected, rejected.Status);
        Assert.Contains("is corrupt", rejected.Reason, StringComparison.Ordinal);
    }

    [Fact(Timeout = 120_000)]
    public async Task A_push_that_fails_half_way_leaves_nothing_and_the_next_push_takes_the_same_number()
    {
        var registry = new PostgresModelRegistry(Database.DataSource) { ChunkBytes = SmallChunk };
        var model = Sql.UniqueName("halfway");
        var bytes = TestModels.Bytes(Small);
        await registry.PushReadyAsync(model, Small);

        await using (var failing = new FailingStream(bytes, failAfter: 5 * SmallChunk + 10))
        {
            var error = await Assert.ThrowsAsync<IOException>(() => registry.PushAsync(model, failing, [], Ct));
            Assert.Equal("The disk went away.", error.Message);
        }

        var left = await Database.DataSource.QueryAsync<(int Versions, int Chunks, int LastVersion)>("""
            SELECT (SELECT count(*)::int FROM mad.model_versions WHERE model = @model), (SELECT count(*)::int FROM mad.model_chunks WHERE model = @model),
                   (SELECT last_version FROM mad.models WHERE name = @model)
            """, new { model });
        var next = await registry.PushAsync(model, bytes, [], Ct);

        Assert.Equal([(1, Chunks(bytes.Length), 1)], left);
        Assert.Equal(2, next.Version);
    }

    [Fact(Timeout = 120_000)]
    public async Task A_complete_version_takes_no_more_chunks_and_only_admins_and_sidecars_read_them()
    {
        await using var roles = new HostileRoles(Database);
        var (_, admin) = await roles.LoginAsync("admin", "IN ROLE mad_admin");
        var (_, user) = await roles.LoginAsync("user", "IN ROLE mad_user");
        var (_, sidecar) = await roles.LoginAsync("sidecar", "IN ROLE mad_sidecar");
        var model = Sql.UniqueName("sealed");
        await new PostgresModelRegistry(Database.DataSource) { ChunkBytes = SmallChunk }.PushReadyAsync(model, Small);

        // As an admin would type it: another chunk after the last, a chunk again, a fresh one on a version never opened.
        var chunks = Chunks(TestModels.Bytes(Small).Length);
        var after = await admin.FailsAsync("SELECT mad.push_chunk(@model, 1, @chunks, '\\x00'::bytea)", new { model, chunks });
        var again = await admin.FailsAsync("SELECT mad.push_chunk(@model, 1, 0, '\\x00'::bytea)", new { model });
        var finish = await admin.FailsAsync("SELECT mad.finish_push(@model, 1, repeat('0', 64))", new { model });
        var userPush = await user.FailsAsync("SELECT mad.begin_push(@model, 10, 1)", new { model });
        var userRead = await user.FailsAsync("SELECT bytes FROM mad.model_chunks WHERE model = @model", new { model });
        var userChunkCount = await user.ScalarAsync<int>("SELECT chunks FROM mad.model_versions WHERE model = @model", new { model });
        var sidecarRead = await sidecar.ScalarAsync<long>("SELECT sum(length(bytes)) FROM mad.model_chunks WHERE model = @model", new { model });

        Assert.Equal(PostgresErrorCodes.ObjectNotInPrerequisiteState, after.SqlState);
        Assert.Equal(PostgresErrorCodes.ObjectNotInPrerequisiteState, again.SqlState);
        Assert.Contains("no chunked push of version 1 in progress", after.MessageText, StringComparison.Ordinal);
        Assert.Equal(PostgresErrorCodes.ObjectNotInPrerequisiteState, finish.SqlState);
        Assert.Equal(PostgresErrorCodes.InsufficientPrivilege, userPush.SqlState);
        Assert.Equal(PostgresErrorCodes.InsufficientPrivilege, userRead.SqlState);
        Assert.Equal(chunks, userChunkCount);
        Assert.Equal(TestModels.Bytes(Small).Length, sidecarRead);
    }

    [Fact(Timeout = 120_000)]
    public async Task A_chunked_version_is_pulled_to_a_device_and_scores_there()
    {
        await using var roles = new HostileRoles(Database);
        var (device, _) = await roles.LoginAsync("device", "IN ROLE mad_user, mad_device");
        var model = Sql.UniqueName("pulled");
        await new PostgresModelRegistry(Database.DataSource) { ChunkBytes = SmallChunk }.PushReadyAsync(model, Small);
        var path = Path.Combine(Path.GetTempPath(), $"mad-device-{Guid.NewGuid():N}.db");
        try
        {
            await ModelSync.PullAsync(Database.ConnectionStringFor(device, HostileRoles.Password), path, new PullOptions { Models = [model + "@1"] }, Ct);

            await using var registry = await SqliteModelRegistry.OpenAsync(path, Ct);
            Assert.Equal(TestModels.Bytes(Small), await registry.LoadBytesAsync(model, 1, Ct));
            SqlitePredictFunctions.Register(registry.Connection);
            Assert.Equal(0L, await registry.Connection.ExecuteScalarAsync<long>($"SELECT predict('{model}@1', 5.1, 3.5, 1.4, 0.2)"));
        }
        finally
        {
            SqliteConnection.ClearAllPools();
            File.Delete(path);
        }
    }

    private static int Chunks(int length) => (length + SmallChunk - 1) / SmallChunk;

    private static float[] Vector(JsonNode answer) => [.. Enumerable.Range(0, 4).Select(j => answer[$"vector_{j}"]!.GetValue<float>())];

    private static async Task<string> Sha256Async(string path)
    {
        await using var stream = File.OpenRead(path);
        return Convert.ToHexStringLower(await SHA256.HashDataAsync(stream, Ct));
    }

    /// <summary>A file whose disk fails after some bytes.</summary>
    private sealed class FailingStream(byte[] bytes, int failAfter) : Stream
    {
        private readonly MemoryStream _inner = new(bytes, writable: false);

        public override bool CanRead => true;

        public override bool CanSeek => true;

        public override bool CanWrite => false;

        public override long Length => _inner.Length;

        public override long Position { get => _inner.Position; set => _inner.Position = value; }

        public override int Read(byte[] buffer, int offset, int count) =>
            Position + count > failAfter ? throw new IOException("The disk went away.") : _inner.Read(buffer, offset, count);

        public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default) =>
            Position + buffer.Length > failAfter ? throw new IOException("The disk went away.") : _inner.ReadAsync(buffer, cancellationToken);

        public override void Flush()
        {
        }

        public override long Seek(long offset, SeekOrigin origin) => _inner.Seek(offset, origin);

        public override void SetLength(long value) => throw new NotSupportedException();

        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();

        protected override void Dispose(bool disposing)
        {
            _inner.Dispose();
            base.Dispose(disposing);
        }
    }
}

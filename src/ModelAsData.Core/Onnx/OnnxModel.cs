using System.Security.Cryptography;
using Microsoft.ML.OnnxRuntime;

namespace ModelAsData.Core.Onnx;

/// <summary>
/// One model version loaded into ONNX Runtime, with its signature and the columns its predictions decode into.
/// Thread-safe: many <see cref="ModelScorer"/>s, one per thread, may score with it at once. Owns the native session;
/// dispose it when no scorer uses it any more.
/// </summary>
public sealed class OnnxModel : IDisposable
{
    private OnnxModel(InferenceSession session, string sha256, ModelSignature signature, int maxBatch)
    {
        Session = session;
        Sha256 = sha256;
        Signature = signature;
        MaxBatchSize = maxBatch;
    }

    /// <summary>Lower-case hex sha256 of the bytes as pushed (before any rewrite).</summary>
    public string Sha256 { get; }

    public ModelSignature Signature { get; }

    /// <summary>The most rows one call may score: 1 for a model whose inputs fix the batch to 1.</summary>
    public int MaxBatchSize { get; }

    internal InferenceSession Session { get; }

    /// <summary>
    /// Loads a model from its bytes. A model ONNX Runtime cannot load throws <see cref="ErrorCode.InvalidModel"/>
    /// with ONNX Runtime's reason.
    /// </summary>
    public static OnnxModel Load(byte[] onnx, ScoringOptions? options = null)
    {
        options ??= ScoringOptions.Default;
        var sha256 = Convert.ToHexStringLower(SHA256.HashData(onnx));
        if (onnx.Length == 0)
        {
            throw new ModelAsDataException(ErrorCode.InvalidModel, "The model is empty (0 bytes): give the path of an .onnx file.");
        }

        if (onnx.LongLength > options.MaxModelBytes)
        {
            throw new ModelAsDataException(ErrorCode.InvalidModel,
                $"The model is {onnx.LongLength:N0} bytes; the limit is {options.MaxModelBytes:N0}. Raise it with MAD_MAX_MODEL_BYTES if this is intended.");
        }

        var outline = ExternalTensors.Outline(onnx);
        ExternalTensors.Refuse(outline);
        var (bytes, classes) = ZipMapRemover.Rewrite(onnx, outline);
        return Create(sessionOptions => new InferenceSession(bytes, sessionOptions), sha256, classes, onnx.LongLength, options);
    }

    /// <summary>
    /// Loads a model from a file, by its path: ONNX Runtime reads the file itself, so no managed copy of the bytes is
    /// held while it parses them (a large model peaks at about twice its size instead of three times). The checks
    /// are those of <see cref="Load(byte[], ScoringOptions?)"/>, on the file's outline read as a stream; a model with
    /// a ZipMap to remove (small scikit-learn models) is read into memory and loaded from its bytes.
    /// </summary>
    /// <param name="sha256">The file's sha256 when the caller has it (it hashed the bytes as it wrote them); null: hashed here.</param>
    public static OnnxModel LoadFile(string path, ScoringOptions? options = null, string? sha256 = null)
    {
        options ??= ScoringOptions.Default;
        var length = new FileInfo(path).Length;
        if (length == 0)
        {
            throw new ModelAsDataException(ErrorCode.InvalidModel, "The model is empty (0 bytes): give the path of an .onnx file.");
        }

        if (length > options.MaxModelBytes)
        {
            throw new ModelAsDataException(ErrorCode.InvalidModel,
                $"The model is {length:N0} bytes; the limit is {options.MaxModelBytes:N0}. Raise it with MAD_MAX_MODEL_BYTES if this is intended.");
        }

        Outline.ModelProto? outline;
        using (var file = File.OpenRead(path))
        {
            sha256 ??= Convert.ToHexStringLower(SHA256.HashData(file));
            file.Position = 0;
            outline = ExternalTensors.Outline(file);
        }

        ExternalTensors.Refuse(outline);
        if (ZipMapRemover.HasZipMap(outline))
        {
            return Load(File.ReadAllBytes(path), options);
        }

        return Create(sessionOptions => new InferenceSession(path, sessionOptions), sha256, new Dictionary<string, IReadOnlyList<string>>(), length, options);
    }

    private static OnnxModel Create(Func<SessionOptions, InferenceSession> open, string sha256, IReadOnlyDictionary<string, IReadOnlyList<string>> classes, long length, ScoringOptions options)
    {
        OnnxRuntimeSetup.EnsureInitialised();
        InferenceSession session;
        using (var sessionOptions = CreateSessionOptions(options))
        {
            try
            {
                session = open(sessionOptions);
            }
            catch (OnnxRuntimeException e)
            {
                throw new ModelAsDataException(ErrorCode.InvalidModel, $"ONNX Runtime cannot load the model: {e.Message}", e);
            }
        }

        if (length >= MemoryReclaim.LargeModelBytes)
        {
            MemoryReclaim.Soon();
        }

        try
        {
            var (signature, maxBatch) = SignatureReader.Read(session, classes);
            return new OnnxModel(session, sha256, signature, maxBatch);
        }
        catch
        {
            session.Dispose();
            throw;
        }
    }

    /// <summary>A scorer with buffers for up to <paramref name="capacity"/> rows (capped at <see cref="MaxBatchSize"/>).</summary>
    /// <remarks>A model whose signature is <see cref="ModelSignature.TensorOnly"/> throws <see cref="ErrorCode.FeatureMismatch"/> saying why.</remarks>
    public ModelScorer CreateScorer(int capacity) => Signature.TensorOnly is { } reason
        ? throw new ModelAsDataException(ErrorCode.FeatureMismatch,
            $"This model scores tensors, not rows of features: {reason}. Send its tensors to the sidecar's Open Inference Protocol endpoint (POST /v2/models/{{name}}/infer).")
        : new(this, Math.Clamp(capacity, 1, MaxBatchSize));

    /// <summary>
    /// Runs the model on whole tensors, one per input, by the inputs' own names; returns the outputs asked for (all,
    /// when <paramref name="outputs"/> is null) with the element types and shapes ONNX Runtime gives them. Any model
    /// this signature accepts runs here, <see cref="ModelSignature.TensorOnly"/> or not. Tensors that do not fit an
    /// input, and failures of ONNX Runtime, throw <see cref="ErrorCode.FeatureMismatch"/> naming them; cancellation
    /// stops the native call. Thread-safe.
    /// </summary>
    /// <param name="label">The model as messages name it (<c>iris@2</c>).</param>
    public IReadOnlyList<Tensors.Tensor> Run(string label, IReadOnlyList<Tensors.Tensor> inputs, IReadOnlyList<string>? outputs = null, CancellationToken cancellationToken = default) =>
        Tensors.TensorRunner.Run(this, label, inputs, outputs, cancellationToken);

    /// <summary>A batch size that suits the model: wide inputs (images) score best in small batches, tabular ones in large.</summary>
    public int PreferredBatchSize => Math.Min(MaxBatchSize, Math.Clamp(65_536 / Math.Max(1, Signature.FeatureCount), 16, 1024));

    public void Dispose() => Session.Dispose();

    private static SessionOptions CreateSessionOptions(ScoringOptions options)
    {
        var sessionOptions = new SessionOptions
        {
            GraphOptimizationLevel = GraphOptimizationLevel.ORT_ENABLE_ALL,
            IntraOpNumThreads = options.IntraOpThreads,
            InterOpNumThreads = 1,
            ExecutionMode = ExecutionMode.ORT_SEQUENTIAL,
        };
        // Spinning intra-op threads take CPU from the database on a shared machine (see shared/LIMITS.md).
        sessionOptions.AddSessionConfigEntry("session.intra_op.allow_spinning", "0");
        return sessionOptions;
    }
}

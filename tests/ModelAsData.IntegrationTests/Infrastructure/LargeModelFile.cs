using System.Buffers.Binary;
using Google.Protobuf;
using ModelAsData.Core.Onnx.Proto;

namespace ModelAsData.IntegrationTests.Infrastructure;

/// <summary>
/// A real ONNX model of about 300 MB, written at test time into a temp file (never committed): an embedding table
/// <c>E[rows, 4]</c> of floats with <c>E[i, j] = (float)(i * 4 + j)</c>, and <c>vector = Flatten(Gather(E, ids))</c> for
/// <c>ids</c> int64 <c>[N, 1]</c>, so every row of the table is a checkable answer (a misplaced chunk gives wrong
/// values). The protobuf is written by hand around the table, streamed, so writing it holds no copy of it. A class
/// fixture: one file per test class, deleted after it.
/// </summary>
public sealed class LargeModelFile : IDisposable
{
    /// <summary>About 300 MB: larger than the old 256 MiB limit, and 19 chunks of 16 MiB.</summary>
    public const long TableBytes = 300L * 1024 * 1024;

    public LargeModelFile()
    {
        Path = System.IO.Path.Combine(System.IO.Path.GetTempPath(), $"mad-large-{Guid.NewGuid():N}.onnx");
        Rows = TableBytes / 16;
        Write(Path, Rows);
    }

    public string Path { get; }

    /// <summary>The rows of the embedding table: ids 0 to Rows - 1.</summary>
    public long Rows { get; }

    public long Length => new FileInfo(Path).Length;

    /// <summary>The vector the model gives for an id.</summary>
    public static float[] Expected(long id) => [(float)(id * 4), (float)(id * 4 + 1), (float)(id * 4 + 2), (float)(id * 4 + 3)];

    public void Dispose() => File.Delete(Path);

    private static void Write(string path, long rows)
    {
        var table = new TensorProto { Name = "embedding", DataType = 1, Dims = { rows, 4 } };
        var graph = new GraphProto
        {
            Name = "embed",
            Node =
            {
                new NodeProto { OpType = "Gather", Name = "gather", Input = { "embedding", "ids" }, Output = { "g" } },
                new NodeProto { OpType = "Flatten", Name = "flatten", Input = { "g" }, Output = { "vector" } },
            },
            Input = { Value("ids", 7, 1) },
            Output = { Value("vector", 1, 4) },
        };
        var model = new ModelProto { IrVersion = 8, OpsetImport = { new OperatorSetIdProto { Domain = "", Version = 13 } } };

        // Repeated and embedded fields of one message may come in any order and pieces: the table's header and its
        // raw_data (field 9), the graph and its initializer (field 5), the model and its graph (field 7).
        var raw = rows * 16;
        var header = table.ToByteArray();
        var initializer = header.Length + Tag(9).Length + Varint((ulong)raw).Length + raw;
        var graphHead = graph.ToByteArray();
        var graphLength = graphHead.Length + Tag(5).Length + Varint((ulong)initializer).Length + initializer;
        using var file = new BufferedStream(File.Create(path), 1 << 20);
        file.Write(model.ToByteArray());
        file.Write(Tag(7));
        file.Write(Varint((ulong)graphLength));
        file.Write(graphHead);
        file.Write(Tag(5));
        file.Write(Varint((ulong)initializer));
        file.Write(header);
        file.Write(Tag(9));
        file.Write(Varint((ulong)raw));
        var block = new byte[1 << 20];
        var at = 0;
        for (long i = 0; i < rows * 4; i++)
        {
            BinaryPrimitives.WriteSingleLittleEndian(block.AsSpan(at), i);
            at += 4;
            if (at == block.Length)
            {
                file.Write(block);
                at = 0;
            }
        }

        file.Write(block.AsSpan(0, at));
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

    private static byte[] Tag(int field) => Varint((ulong)((field << 3) | 2));

    private static byte[] Varint(ulong value)
    {
        var bytes = new List<byte>();
        do
        {
            var b = (byte)(value & 0x7F);
            value >>= 7;
            bytes.Add(value == 0 ? b : (byte)(b | 0x80));
        }
        while (value != 0);
        return [.. bytes];
    }
}

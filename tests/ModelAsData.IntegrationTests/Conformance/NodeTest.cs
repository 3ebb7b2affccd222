using System.Runtime.InteropServices;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;
using ModelAsData.Core.Onnx.Proto;

namespace ModelAsData.IntegrationTests.Conformance;

/// <summary>
/// One of ONNX's backend node tests (<c>shared/onnx-node-tests/node/test_*</c>): the model, its inputs and its
/// expected outputs (data set 0), in the order of the graph's inputs that are not initializers and of its outputs.
/// </summary>
internal sealed record NodeTest(string Name, byte[] Model, IReadOnlyList<string> InputNames, IReadOnlyList<string> OutputNames,
    IReadOnlyList<byte[]> InputFiles, IReadOnlyList<byte[]> OutputFiles, string? NonTensor)
{
    private static readonly Lazy<string> s_folder = new(Find);

    /// <summary>Every node test, then the real MNIST-8 CNN of the model zoo with its three data sets (the same layout).</summary>
    public static IReadOnlyList<NodeTest> LoadAll() =>
        Directory.GetDirectories(s_folder.Value).Order(StringComparer.Ordinal).Select(f => Load(f, Path.GetFileName(f), 0))
            .Concat(Enumerable.Range(0, 3).Select(set => Load(Path.Combine(TestModels.Folder, "mnist-8"), $"zoo_mnist_8_set_{set}", set)))
            .ToList();

    private static NodeTest Load(string folder, string name, int set)
    {
        var model = File.ReadAllBytes(Path.Combine(folder, "model.onnx"));
        var graph = ModelProto.Parser.ParseFrom(model).Graph;
        var initializers = graph.Initializer.Select(i => i.Name).ToHashSet(StringComparer.Ordinal);
        var inputs = graph.Input.Where(i => !initializers.Contains(i.Name)).ToList();
        var data = Path.Combine(folder, $"test_data_set_{set}");
        var nonTensor = inputs.Concat(graph.Output).Where(v => v.Type?.TensorType is null).Select(v => v.Name).ToList();
        return new NodeTest(name, model, inputs.Select(i => i.Name).ToList(), graph.Output.Select(o => o.Name).ToList(),
            Enumerable.Range(0, inputs.Count).Select(k => File.ReadAllBytes(Path.Combine(data, $"input_{k}.pb"))).ToList(),
            Enumerable.Range(0, graph.Output.Count).Select(k => File.ReadAllBytes(Path.Combine(data, $"output_{k}.pb"))).ToList(),
            nonTensor.Count == 0 ? null : $"non-tensor (sequence/optional/map) {string.Join(", ", nonTensor.Select(n => $"'{n}'"))}");
    }

    /// <summary>
    /// Runs the test in ONNX Runtime itself, through its own C# API and nothing of ModelAsData's: null when ONNX
    /// Runtime loads and runs it and gives the expected outputs, else why not. The conformance bar is this set.
    /// </summary>
    public string? RunInOnnxRuntime()
    {
        if (NonTensor is not null)
        {
            return NonTensor;
        }

        var inputs = InputFiles.Select(NodeTensor.Read).ToList();
        var expected = OutputFiles.Select(NodeTensor.Read).ToList();
        if (inputs.Concat(expected).FirstOrDefault(t => NodeTensor.DataTypeName(t.DataType) is null) is { } odd)
        {
            return $"element type {odd.DataType}";
        }

        var pins = new List<GCHandle>();
        var values = new List<OrtValue>();
        try
        {
            using var session = new InferenceSession(Model);
            foreach (var input in inputs)
            {
                if (input.Strings is not null)
                {
                    var strings = OrtValue.CreateTensorWithEmptyStrings(OrtAllocator.DefaultInstance, input.Shape);
                    for (var i = 0; i < input.Strings.Length; i++)
                    {
                        strings.StringTensorSetElementAt(input.Strings[i].AsSpan(), i);
                    }

                    values.Add(strings);
                    continue;
                }

                var pin = GCHandle.Alloc(input.Bytes, GCHandleType.Pinned);
                pins.Add(pin);
                values.Add(OrtValue.CreateTensorValueWithData(OrtMemoryInfo.DefaultInstance, (TensorElementType)input.DataType, input.Shape, pin.AddrOfPinnedObject(), input.Bytes.Length));
            }

            using var results = session.Run(new RunOptions(), InputNames, values, OutputNames);
            for (var o = 0; o < results.Count; o++)
            {
                var info = results[o].GetTensorTypeAndShape();
                var actual = (int)info.ElementDataType == 8
                    ? new NodeTensor(8, info.Shape, [], results[o].GetStringTensorAsArray())
                    : new NodeTensor((int)info.ElementDataType, info.Shape, results[o].GetTensorMutableRawData().ToArray(), null);
                if (Compare(expected[o], OutputNames[o], actual.ToString(), actual.Shape, actual.Count, actual.Element) is { } difference)
                {
                    return $"ONNX Runtime's own output differs: {difference}";
                }
            }

            return null;
        }
        catch (OnnxRuntimeException e)
        {
            var message = e.Message.ReplaceLineEndings(" ");
            return $"ONNX Runtime: {(message.Length > 160 ? message[..160] + "…" : message)}";
        }
        finally
        {
            values.ForEach(v => v.Dispose());
            pins.ForEach(p => p.Free());
        }
    }

    /// <summary>Null when the actual output has the expected type, shape and elements, else the first difference.</summary>
    public static string? Compare(NodeTensor expected, string name, string actualType, IReadOnlyList<long> actualShape, long actualCount, Func<long, string> actual)
    {
        if (actualType != expected.ToString() || !actualShape.SequenceEqual(expected.Shape))
        {
            return $"output '{name}' is {actualType}, expected {expected}";
        }

        for (long i = 0; i < actualCount; i++)
        {
            if (!expected.Matches(i, actual(i)))
            {
                return $"output '{name}' element {i} is {actual(i)}, expected {expected.Element(i)}";
            }
        }

        return null;
    }

    // The node tests sit beside models/external in the shared folder, which TestModels finds (or MAD_SHARED names).
    private static string Find()
    {
        var folder = Path.GetFullPath(Path.Combine(TestModels.Folder, "..", "..", "onnx-node-tests", "node"));
        return Directory.Exists(folder)
            ? folder
            : throw new DirectoryNotFoundException($"No {folder}: the shared folder has no onnx-node-tests (see its README).");
    }
}

using Google.Protobuf;
using ModelAsData.Core;
using ModelAsData.Core.Onnx;
using ModelAsData.Core.Onnx.Proto;
using ModelAsData.Tests.Sqlite;

namespace ModelAsData.Tests.Onnx;

/// <summary>
/// Tensors whose data lives in an external file are refused at load, wherever the TensorProto sits: ONNX Runtime would
/// read the file they name from the loading machine. tests/models/external_data.onnx is a real model as onnx saves one
/// with save_as_external_data=True (tests/models/make_external_data.py); the others are built here, one external tensor
/// each, in every place a TensorProto can be.
/// </summary>
public sealed class ExternalTensorTests
{
    private static readonly string s_madeByOnnx = Path.Combine(AppContext.BaseDirectory, "TestData", "external_data.onnx");

    [Fact]
    public void A_model_saved_with_external_data_is_refused_naming_the_tensor_and_how_to_embed_it()
    {
        var e = Assert.Throws<ModelAsDataException>(() => OnnxModel.Load(File.ReadAllBytes(s_madeByOnnx)));

        Assert.Equal(ErrorCode.InvalidModel, e.Code);
        Assert.StartsWith("Tensor 'W' (an initializer of graph 'external_data', file 'external_data.weights') keeps its data in an external file", e.Message, StringComparison.Ordinal);
        Assert.Contains("onnx.save_model(onnx.load(path), new_path, save_as_external_data=False)", e.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("constant", "'secret' (attribute 'value' of node 'c' (Constant), file '/etc/passwd')")]
    [InlineData("subgraph", "'secret' (an initializer of graph 'then', file '/etc/passwd')")]
    [InlineData("subgraph_constant", "'secret' (attribute 'value' of node 'c' (Constant), file '/etc/passwd')")]
    [InlineData("function", "'secret' (attribute 'value' of node 'c' (Constant), file '/etc/passwd')")]
    [InlineData("sparse", "'secret' (a sparse initializer of graph 'identity', file '/etc/passwd')")]
    [InlineData("training", "'secret' (an initializer of graph 'init', file '/etc/passwd')")]
    [InlineData("listed_only", "'secret' (an initializer of graph 'identity', file '/etc/passwd')")]
    public void An_external_tensor_anywhere_in_the_model_is_refused(string where, string described)
    {
        var model = ModelProto.Parser.ParseFrom(BuiltModels.Identity(("x", BuiltModels.Float, [null, 4])));
        var secret = External(where == "listed_only");
        switch (where)
        {
            case "constant":
                model.Graph.Node.Add(Constant(secret));
                break;
            case "subgraph":
            case "subgraph_constant":
                var then = new GraphProto { Name = "then" };
                if (where == "subgraph")
                {
                    then.Initializer.Add(secret);
                }
                else
                {
                    then.Node.Add(Constant(secret));
                }

                model.Graph.Node.Add(new NodeProto { OpType = "If", Name = "if", Attribute = { new AttributeProto { Name = "then_branch", G = then } } });
                break;
            case "function":
                model.Functions.Add(new FunctionProto { Name = "f", Node = { Constant(secret) } });
                break;
            case "sparse":
                model.Graph.SparseInitializer.Add(new SparseTensorProto { Values = secret, Indices = new TensorProto { Name = "i", DataType = BuiltModels.Int64 } });
                break;
            case "training":
                model.TrainingInfo.Add(new TrainingInfoProto { Initialization = new GraphProto { Name = "init", Initializer = { secret } } });
                break;
            default:
                model.Graph.Initializer.Add(secret);
                break;
        }

        Assert.Equal(described, ExternalTensors.Find(model.ToByteArray()));
        var e = Assert.Throws<ModelAsDataException>(() => OnnxModel.Load(model.ToByteArray()));
        Assert.Equal(ErrorCode.InvalidModel, e.Code);
        Assert.StartsWith($"Tensor {described} keeps its data in an external file", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Models_whose_tensors_are_embedded_pass_the_check()
    {
        foreach (var file in new[] { "skl2onnx_rf_iris.onnx", "skl2onnx_pipeline_titanic_nozipmap.onnx", "mnist-8/model.onnx", "pytorch_image_classifier32.onnx" })
        {
            Assert.Null(ExternalTensors.Find(TestModels.ExternalBytes(file)));
        }
    }

    [Fact]
    public async Task The_sqlite_store_refuses_to_push_it_and_stores_nothing()
    {
        await using var db = await TempDatabase.CreateAsync();

        var e = await Assert.ThrowsAsync<ModelAsDataException>(() => db.Registry.PushAsync("external", File.ReadAllBytes(s_madeByOnnx), []));

        Assert.Equal(ErrorCode.InvalidModel, e.Code);
        Assert.Contains("Tensor 'W'", e.Message, StringComparison.Ordinal);
        Assert.Contains("save_as_external_data=False", e.Message, StringComparison.Ordinal);
        Assert.Equal(0L, db.Scalar("SELECT count(*) FROM mad_model_versions"));
        Assert.Empty(await db.Registry.ListAsync());
    }

    private static TensorProto External(bool listedOnly)
    {
        var tensor = new TensorProto { Name = "secret", DataType = BuiltModels.Float, Dims = { 2 } };
        tensor.ExternalData.Add(new StringStringEntryProto { Key = "location", Value = "/etc/passwd" });
        if (!listedOnly)
        {
            tensor.DataLocation = TensorProto.Types.DataLocation.External;
        }

        return tensor;
    }

    private static NodeProto Constant(TensorProto value) =>
        new() { OpType = "Constant", Name = "c", Output = { "c_out" }, Attribute = { new AttributeProto { Name = "value", T = value } } };
}

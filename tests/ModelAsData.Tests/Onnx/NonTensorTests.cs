using ModelAsData.Core;
using ModelAsData.Core.Onnx;

namespace ModelAsData.Tests.Onnx;

/// <summary>
/// Issue 14: a model with a non-tensor input or output (sequence, optional, map) is refused at validation with a
/// message naming the value and what is supported. The models are ONNX's own node tests (shared/onnx-node-tests),
/// which the conformance test lists as "non-tensor" rather than run: this is what their refusal says.
/// </summary>
public sealed class NonTensorTests
{
    [Theory]
    [InlineData("test_identity_sequence", "input 'x' is a sequence of float tensors")]
    [InlineData("test_sequence_insert_at_back", "input 'sequence' is a sequence of int64 tensors")]
    [InlineData("test_optional_has_element", "input 'optional_input' is an optional float tensor")]
    public void A_non_tensor_input_is_refused_naming_it_and_what_is_supported(string test, string expected)
    {
        var folder = Path.GetFullPath(Path.Combine(TestModels.External("."), "..", "..", "onnx-node-tests", "node", test));

        var refused = Assert.Throws<ModelAsDataException>(() => OnnxModel.Load(File.ReadAllBytes(Path.Combine(folder, "model.onnx"))));

        Assert.Equal(ErrorCode.InvalidModel, refused.Code);
        Assert.Equal($"The model loads, but ModelAsData cannot score it: {expected}; ModelAsData feeds tensor inputs only (any element type, any shape).", refused.Message);
    }
}

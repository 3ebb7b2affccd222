# Makes external_data.onnx: a small real model (y = x @ W + b, then an If whose branch holds a Constant) saved the way
# onnx writes large models, with every tensor's data in external_data.weights (data_location = EXTERNAL). ModelAsData
# refuses it at load; the weights file is kept beside it so the model is complete as onnx made it.
# Run with Debian's python3-onnx: /usr/bin/python3 make_external_data.py
import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

weights = numpy_helper.from_array(np.arange(8, dtype=np.float32).reshape(4, 2), "W")
bias = numpy_helper.from_array(np.array([0.5, -0.5], dtype=np.float32), "b")
branch_value = numpy_helper.from_array(np.array([1.0, 2.0], dtype=np.float32), "branch_value")
then_graph = helper.make_graph([helper.make_node("Constant", [], ["then_out"], value=branch_value)], "then_branch", [],
                               [helper.make_tensor_value_info("then_out", TensorProto.FLOAT, [2])])
else_graph = helper.make_graph([helper.make_node("Constant", [], ["else_out"], value=branch_value)], "else_branch", [],
                               [helper.make_tensor_value_info("else_out", TensorProto.FLOAT, [2])])
graph = helper.make_graph(
    [
        helper.make_node("MatMul", ["x", "W"], ["xw"]),
        helper.make_node("Add", ["xw", "b"], ["y"]),
        helper.make_node("Constant", [], ["flag"], value=helper.make_tensor("flag_value", TensorProto.BOOL, [], [True])),
        helper.make_node("If", ["flag"], ["z"], then_branch=then_graph, else_branch=else_graph),
    ],
    "external_data",
    [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])],
    [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 2]), helper.make_tensor_value_info("z", TensorProto.FLOAT, [2])],
    [weights, bias],
)
model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
model.ir_version = 8
onnx.checker.check_model(model)
onnx.save_model(model, "external_data.onnx", save_as_external_data=True, all_tensors_to_one_file=True,
                location="external_data.weights", size_threshold=0, convert_attribute=True)

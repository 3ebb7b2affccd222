"""Makes small test models of issue 14 (docs/TENSORS.md) with the onnx package's helper, no training needed:

* uint64_columns.onnx: input `x` uint64 [N, 4]; outputs `first` uint64 [N, 1] (x[:, 0], a column of its own),
  `echo` uint64 [N, 4] (x itself, four columns) and `grid` uint64 [N, 2, 2] (x as a 2x2 tensor per row, an array
  column). Values past 2^63 and 2^53 must come back exactly, on both stores.
* int64_columns.onnx: input `x` int64 [N, 2]; outputs `first` int64 [N, 1] (x[:, 0]) and `echo` int64 [N, 2] (x
  itself): signed 64-bit values past 2^53, and the extremes, must come back exactly (a double would round them).
* gather_ids.onnx: input `ids` int64 [N, 2] indexes a 10 x 3 table of floats; outputs `score` float [N] (the sum of
  the two rows looked up) and `looked_up` float [N, 2, 3]. An id outside 0-9 makes ONNX Runtime fail: the row that
  holds it must get its own error, in a batch of fixed-size rows.
* gather_one.onnx: the same graph with a fixed batch of one, `ids` int64 [1, 2]: a model exported without a dynamic
  batch axis, which ONNX Runtime runs one row at a time.

Run with /usr/bin/python3 (Debian's python3-onnx, 1.12):
    /usr/bin/python3 tests/models/make_onnx_graphs.py
"""
import os

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

HERE = os.path.dirname(os.path.abspath(__file__))


def save(graph, file):
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], producer_name="make_onnx_graphs.py")
    model.ir_version = 7
    onnx.checker.check_model(model)
    path = os.path.join(HERE, file)
    onnx.save(model, path)
    print("wrote", path)


def uint64_columns():
    ints = lambda name, values: numpy_helper.from_array(np.array(values, dtype=np.int64), name)
    nodes = [
        helper.make_node("Slice", ["x", "start", "end", "axis"], ["first"]),
        helper.make_node("Identity", ["x"], ["echo"]),
        helper.make_node("Reshape", ["x", "grid_shape"], ["grid"]),
    ]
    graph = helper.make_graph(
        nodes, "uint64_columns",
        [helper.make_tensor_value_info("x", TensorProto.UINT64, ["N", 4])],
        [helper.make_tensor_value_info("first", TensorProto.UINT64, ["N", 1]),
         helper.make_tensor_value_info("echo", TensorProto.UINT64, ["N", 4]),
         helper.make_tensor_value_info("grid", TensorProto.UINT64, ["N", 2, 2])],
        [ints("start", [0]), ints("end", [1]), ints("axis", [1]), ints("grid_shape", [-1, 2, 2])])
    save(graph, "uint64_columns.onnx")


def int64_columns():
    ints = lambda name, values: numpy_helper.from_array(np.array(values, dtype=np.int64), name)
    nodes = [
        helper.make_node("Slice", ["x", "start", "end", "axis"], ["first"]),
        helper.make_node("Identity", ["x"], ["echo"]),
    ]
    graph = helper.make_graph(
        nodes, "int64_columns",
        [helper.make_tensor_value_info("x", TensorProto.INT64, ["N", 2])],
        [helper.make_tensor_value_info("first", TensorProto.INT64, ["N", 1]),
         helper.make_tensor_value_info("echo", TensorProto.INT64, ["N", 2])],
        [ints("start", [0]), ints("end", [1]), ints("axis", [1])])
    save(graph, "int64_columns.onnx")


def gather(batch, file):
    table = numpy_helper.from_array(np.arange(30, dtype=np.float32).reshape(10, 3) / 10, "table")
    axes = numpy_helper.from_array(np.array([1, 2], dtype=np.int64), "axes")
    nodes = [
        helper.make_node("Gather", ["table", "ids"], ["looked_up"], axis=0),
        helper.make_node("ReduceSum", ["looked_up", "axes"], ["score"], keepdims=0),
    ]
    graph = helper.make_graph(
        nodes, file[:-5],
        [helper.make_tensor_value_info("ids", TensorProto.INT64, [batch, 2])],
        [helper.make_tensor_value_info("score", TensorProto.FLOAT, [batch]),
         helper.make_tensor_value_info("looked_up", TensorProto.FLOAT, [batch, 2, 3])],
        [table, axes])
    save(graph, file)


uint64_columns()
int64_columns()
gather("N", "gather_ids.onnx")
gather(1, "gather_one.onnx")

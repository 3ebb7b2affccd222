# Makes rf_iris_rotated.onnx: the shipped skl2onnx_rf_iris.onnx (shared/models/external) with its trees' class ids
# rotated (0 -> 1 -> 2 -> 0), so it takes the same input and decodes into the same columns but predicts differently.
# Deployment tests use it as a canary whose rows are told from the champion's by their predictions.
# Run with Debian's python3-onnx: /usr/bin/python3 make_rf_iris_rotated.py <shared>/models/external/skl2onnx_rf_iris.onnx
import sys

import onnx

model = onnx.load(sys.argv[1])
for node in model.graph.node:
    if node.op_type == "TreeEnsembleClassifier":
        for attribute in node.attribute:
            if attribute.name == "class_ids":
                rotated = [(i + 1) % 3 for i in attribute.ints]
                del attribute.ints[:]
                attribute.ints.extend(rotated)
onnx.checker.check_model(model)
onnx.save(model, "rf_iris_rotated.onnx")

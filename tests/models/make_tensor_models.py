"""Makes the tensor test models of issue 14 (docs/TENSORS.md), each a real PyTorch model exported by torch.onnx:

* cnn_uint8.onnx: a small CNN over uint8 images, input `image` uint8 [N, 1, 28, 28]; outputs `logits` float [N, 10]
  and `features` float [N, 4, 7, 7] (a tensor output per row).
* token_mean.onnx: token ids, input `ids` int64 [N, T] with a dynamic T; outputs `scores` float [N, 3] and
  `token_scores` float [N, T] (an output whose size follows the row's length).
* mixed_inputs.onnx: four named inputs of different types: `pixels` float [N, 3, 4, 4], `counts` int32 [N, 4],
  `flags` bool [N, 4], `scale` double [N, 1]; outputs `score` float [N], `kept` int64 [N, 4], `grid` double [N, 2, 2].

Weights are random with a fixed seed (torch.manual_seed(14)): the tests compare ModelAsData's answers with ONNX
Runtime's own on the same inputs, so no training is needed. Run with /usr/bin/python3 (torch 1.13, onnx 1.12):
    /usr/bin/python3 tests/models/make_tensor_models.py
"""
import os

import onnx
import torch
from torch import nn

HERE = os.path.dirname(os.path.abspath(__file__))
torch.manual_seed(14)


class Cnn(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 4, 3, padding=1)
        self.conv2 = nn.Conv2d(4, 4, 3, padding=1)
        self.fc = nn.Linear(4 * 7 * 7, 10)

    def forward(self, image):
        x = image.float() / 255.0
        x = torch.max_pool2d(torch.relu(self.conv1(x)), 2)
        features = torch.max_pool2d(torch.relu(self.conv2(x)), 2)
        return self.fc(features.flatten(1)), features


class TokenMean(nn.Module):
    def __init__(self):
        super().__init__()
        self.embedding = nn.Embedding(100, 8)
        self.token = nn.Linear(8, 1)
        self.head = nn.Linear(8, 3)

    def forward(self, ids):
        e = self.embedding(ids)
        return self.head(e.mean(dim=1)), self.token(e).squeeze(-1)


class Mixed(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(3 * 4 * 4 + 4, 1)

    def forward(self, pixels, counts, flags, scale):
        kept = counts.long() * flags.long()
        x = torch.cat([pixels.flatten(1), kept.float()], dim=1)
        score = self.fc(x).squeeze(-1)
        grid = (pixels.double().mean(dim=1)[:, :2, :2]) * scale.view(-1, 1, 1)
        return score, kept, grid


def export(model, args, names, outputs, axes, file):
    path = os.path.join(HERE, file)
    torch.onnx.export(model, args, path, input_names=names, output_names=outputs, dynamic_axes=axes, opset_version=13)
    onnx.checker.check_model(onnx.load(path))
    print("wrote", path)


export(Cnn().eval(), (torch.randint(0, 256, (2, 1, 28, 28), dtype=torch.uint8),), ["image"], ["logits", "features"],
       {"image": {0: "N"}, "logits": {0: "N"}, "features": {0: "N"}}, "cnn_uint8.onnx")
export(TokenMean().eval(), (torch.randint(0, 100, (2, 5), dtype=torch.int64),), ["ids"], ["scores", "token_scores"],
       {"ids": {0: "N", 1: "T"}, "scores": {0: "N"}, "token_scores": {0: "N", 1: "T"}}, "token_mean.onnx")
export(Mixed().eval(), (torch.rand(2, 3, 4, 4), torch.randint(0, 9, (2, 4), dtype=torch.int32), torch.rand(2, 4) > 0.5,
                        torch.rand(2, 1, dtype=torch.float64)),
       ["pixels", "counts", "flags", "scale"], ["score", "kept", "grid"],
       {n: {0: "N"} for n in ["pixels", "counts", "flags", "scale", "score", "kept", "grid"]}, "mixed_inputs.onnx")

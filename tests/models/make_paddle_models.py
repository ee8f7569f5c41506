"""Export the small PaddlePaddle models under tests/models/ with paddle2onnx. Deterministic (seeded).

    /work/venv-paddle/bin/python tests/models/make_paddle_models.py [--out DIR]

Exporter venv (kept apart from edgec's: paddle2onnx pins its own onnx version):

    python3 -m venv /work/venv-paddle && /work/venv-paddle/bin/pip install paddlepaddle==3.3.1 paddle2onnx==2.1.0 packaging

(paddle2onnx 2.1.0 imports `packaging` without depending on it, and on its first export polygraphy
pip-installs onnxruntime into the same venv for constant folding.) Versions used for the committed files: paddlepaddle 3.3.1, paddle2onnx 2.1.0 (onnx 1.17.0), through
`paddle.onnx.export` (PIR program, paddle2onnx's own constant folding). The batch dimension is
dynamic (`None` in the InputSpec), so the tests fix it with `--input-shape`. Models (random seeded
weights; BatchNorm statistics randomized so folding is exercised):

- paddle_mobilenet_v2.onnx (opset 13): `paddle.vision.models.mobilenet_v2(scale=0.25, num_classes=10)`
  on 1x3x64x64 (Conv, BatchNormalization, Clip(ReLU6), depthwise Conv, Add, GlobalAveragePool,
  a Shape/Slice/Concat/Reshape flatten, MatMul).
- paddle_lstm.onnx (opset 13): 2-layer bidirectional `paddle.nn.LSTM` over 7 steps + Linear.
- paddle_transformer.onnx (opset 13): one `paddle.nn.TransformerEncoderLayer` (d_model 32, 4 heads,
  ffn 64, pre-norm, GELU) + LayerNorm over 10 tokens.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import paddle
from paddle import nn

OPSET = 13


def _randomize_batchnorm(model: nn.Layer, rng: np.random.Generator) -> None:
    for layer in model.sublayers():
        if isinstance(layer, nn.BatchNorm2D):
            c = layer._mean.shape[0]
            layer._mean.set_value(rng.normal(0, 0.1, c).astype("float32"))
            layer._variance.set_value(rng.uniform(0.5, 1.5, c).astype("float32"))
            layer.weight.set_value(rng.uniform(0.5, 1.5, c).astype("float32"))
            layer.bias.set_value(rng.normal(0, 0.1, c).astype("float32"))


class LstmHead(nn.Layer):
    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(6, 12, num_layers=2, direction="bidirect")
        self.head = nn.Linear(24, 4)

    def forward(self, x):
        y, _ = self.lstm(x)
        return self.head(y[:, -1])


class Encoder(nn.Layer):
    def __init__(self):
        super().__init__()
        self.layer = nn.TransformerEncoderLayer(32, 4, 64, dropout=0.0, activation="gelu", normalize_before=True)
        self.norm = nn.LayerNorm(32)

    def forward(self, x):
        return self.norm(self.layer(x))


def export(model: nn.Layer, path: Path, shape: list, name: str) -> None:
    model.eval()
    spec = [paddle.static.InputSpec([None, *shape], "float32", name)]
    with tempfile.TemporaryDirectory() as tmp:
        paddle.onnx.export(model, os.path.join(tmp, "m"), input_spec=spec, opset_version=OPSET)
        shutil.copy(os.path.join(tmp, "m.onnx"), path)
    import onnx

    ops = sorted({n.op_type for n in onnx.load(str(path)).graph.node})
    print(f"wrote {path} ({path.stat().st_size} bytes): {', '.join(ops)}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parent)
    out = ap.parse_args().out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    paddle.seed(0)
    m = paddle.vision.models.mobilenet_v2(scale=0.25, num_classes=10)
    _randomize_batchnorm(m, np.random.default_rng(0))
    export(m, out / "paddle_mobilenet_v2.onnx", [3, 64, 64], "image")
    paddle.seed(1)
    export(LstmHead(), out / "paddle_lstm.onnx", [7, 6], "sequence")
    paddle.seed(2)
    export(Encoder(), out / "paddle_transformer.onnx", [10, 32], "tokens")


if __name__ == "__main__":
    main()

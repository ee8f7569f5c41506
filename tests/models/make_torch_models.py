"""Export the small PyTorch models under tests/models/ (LSTM, GRU, RNN, If). Deterministic (seeded).

    python tests/models/make_torch_models.py [--out DIR]

Needs torch (CPU build); the committed .onnx files let the tests run without it. Uses the
TorchScript exporter (`dynamo=False`, opset 17), which emits ONNX LSTM/GRU/RNN nodes and, for
scripted Python control flow, an ONNX If.
"""

from __future__ import annotations

import argparse
import warnings
from pathlib import Path

import torch
from torch import nn

OPSET = 17
SEQ, FEATURES, HIDDEN = 5, 4, 8


class LstmHead(nn.Module):
    """1-layer LSTM (batch_first, hidden 8) over 5 steps, Linear head on the last step."""

    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(FEATURES, HIDDEN, batch_first=True)
        self.head = nn.Linear(HIDDEN, 3)

    def forward(self, x):
        y, _ = self.lstm(x)
        return self.head(y[:, -1])


class BiGru2(nn.Module):
    """2-layer bidirectional GRU (batch_first); returns the sequence and the final states."""

    def __init__(self):
        super().__init__()
        self.gru = nn.GRU(FEATURES, HIDDEN, num_layers=2, bidirectional=True, batch_first=True)

    def forward(self, x):
        return self.gru(x)


class TanhRnn(nn.Module):
    """1-layer Elman RNN (time-major) with an explicit initial state."""

    def __init__(self):
        super().__init__()
        self.rnn = nn.RNN(FEATURES, HIDDEN)

    def forward(self, x, h0):
        y, h = self.rnn(x, h0)
        return y, h


class ShapeIf(nn.Module):
    """`if x.shape[1] > 4` under torch.jit.script: exported as an ONNX If on a shape computation."""

    def __init__(self):
        super().__init__()
        self.a = nn.Linear(FEATURES, FEATURES)
        self.b = nn.Linear(FEATURES, FEATURES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[1] > 4:
            y = torch.relu(self.a(x)) * 2.0
        else:
            y = torch.sigmoid(self.b(x)) - 1.0
        return y


def export(model: nn.Module, args: tuple, path: Path, inputs: list[str], outputs: list[str],
           dynamic_axes: dict | None = None) -> None:
    model.eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, args, str(path), input_names=inputs, output_names=outputs, opset_version=OPSET,
                          dynamo=False, do_constant_folding=True, dynamic_axes=dynamic_axes)
    print(f"wrote {path} ({path.stat().st_size} bytes)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parent)
    out = ap.parse_args().out
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    export(LstmHead(), (torch.randn(1, SEQ, FEATURES),), out / "torch_lstm.onnx", ["x"], ["logits"])
    torch.manual_seed(1)
    export(BiGru2(), (torch.randn(1, SEQ, FEATURES),), out / "torch_gru.onnx", ["x"], ["y", "h_n"])
    torch.manual_seed(2)
    export(TanhRnn(), (torch.randn(SEQ, 1, FEATURES), torch.randn(1, 1, HIDDEN)), out / "torch_rnn.onnx",
           ["x", "h0"], ["y", "h_n"])
    torch.manual_seed(3)
    # Dynamic dim 1 keeps the condition a shape computation; edgec folds it once the shape is fixed.
    export(torch.jit.script(ShapeIf()), (torch.randn(1, 6, FEATURES),), out / "torch_if.onnx", ["x"], ["y"],
           dynamic_axes={"x": {1: "n"}, "y": {1: "n"}})


if __name__ == "__main__":
    main()

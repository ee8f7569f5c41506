"""Write an ONNX model whose external data exceeds 2 GiB, fast and deterministically.

The model is a language-model skeleton: token ids [1, seq] (int64) -> Gather from an embedding
table [vocab, hidden] -> Tanh -> (`--layers` x MatMul [hidden, hidden] -> Tanh) -> MatMul by an
output head [hidden, vocab] -> logits [1, seq, vocab]. All float32 weights live in one external
data file (`weights.bin`, 4096-aligned) beside `model.onnx`, referenced with onnx's external-data
helpers. The defaults (vocab 280000, hidden 1024) make 2 x 1.07 GiB =
2.14 GiB of weights, more than one protobuf can hold.

The data is written in 16 MiB chunks from a seeded generator (uniform in [-0.05, 0.05)), so
writing 2 GiB takes a few seconds and never holds more than one chunk in memory; the same seed
gives the same bytes.

    python benchmarks/large_model.py OUT_DIR [--vocab 280000] [--hidden 1024] [--seq 8] [--layers 0]
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np
from onnx import TensorProto, external_data_helper, helper

CHUNK = 16 << 20  # bytes per generated chunk
ALIGN = 4096
DATA_FILE = "weights.bin"


def _external(name: str, dims: list[int], offset: int) -> TensorProto:
    t = TensorProto()
    t.name, t.data_type = name, TensorProto.FLOAT
    t.dims.extend(dims)
    t.raw_data = b""  # the helper wants a raw_data field to move out
    external_data_helper.set_external_data(t, DATA_FILE, offset=offset, length=int(np.prod(dims)) * 4)
    t.ClearField("raw_data")
    t.data_location = TensorProto.EXTERNAL
    return t


def _write_table(f, nbytes: int, rng: np.random.Generator) -> None:
    left = nbytes
    while left:
        n = min(CHUNK, left) // 4
        f.write(((rng.random(n, dtype=np.float32) - np.float32(0.5)) * np.float32(0.1)).tobytes())
        left -= n * 4


def write_large_model(out_dir: str | os.PathLike, vocab: int = 280000, hidden: int = 1024, seq: int = 8,
                      seed: int = 0, layers: int = 0) -> Path:
    """Write `out_dir/model.onnx` and `out_dir/weights.bin`; return the model's path. `layers`
    adds that many MatMul([hidden, hidden]) + Tanh blocks between the embedding and the head."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    shapes = [("embedding", [vocab, hidden])] + [(f"w{i}", [hidden, hidden]) for i in range(layers)] + \
        [("head", [hidden, vocab])]
    rng = np.random.default_rng(seed)
    inits = []
    with open(out / DATA_FILE, "wb") as f:
        for name, dims in shapes:
            offset = f.seek(0, os.SEEK_END)
            f.write(b"\0" * (-offset % ALIGN))
            inits.append(_external(name, dims, offset + (-offset % ALIGN)))
            _write_table(f, int(np.prod(dims)) * 4, rng)
    nodes = [helper.make_node("Gather", ["embedding", "ids"], ["h"], name="embed"),
             helper.make_node("Tanh", ["h"], ["a"], name="act")]
    x = "a"
    for i in range(layers):
        nodes += [helper.make_node("MatMul", [x, f"w{i}"], [f"m{i}"], name=f"mm{i}"),
                  helper.make_node("Tanh", [f"m{i}"], [f"a{i}"], name=f"act{i}")]
        x = f"a{i}"
    nodes.append(helper.make_node("MatMul", [x, "head"], ["logits"], name="lm_head"))
    g = helper.make_graph(
        nodes, "large_lm",
        [helper.make_tensor_value_info("ids", TensorProto.INT64, [1, seq])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, seq, vocab])], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], producer_name="edgec-large-model")
    m.ir_version = 8
    path = out / "model.onnx"
    path.write_bytes(m.SerializeToString())
    return path


def weights_bytes(vocab: int = 280000, hidden: int = 1024, layers: int = 0) -> int:
    return (2 * vocab * hidden + layers * hidden * hidden) * 4


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out_dir")
    ap.add_argument("--vocab", type=int, default=280000)
    ap.add_argument("--hidden", type=int, default=1024)
    ap.add_argument("--seq", type=int, default=8)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--layers", type=int, default=0, help="MatMul [hidden, hidden] + Tanh blocks before the head")
    a = ap.parse_args(argv)
    path = write_large_model(a.out_dir, a.vocab, a.hidden, a.seq, a.seed, a.layers)
    size = (path.parent / DATA_FILE).stat().st_size
    print(f"{path}: external data {path.parent / DATA_FILE} {size:,} bytes ({size / (1 << 30):.2f} GiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

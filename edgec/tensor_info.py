"""TensorInfo: a graph input's or output's name, shape and dtype, as artifacts record them. Its
own module (no onnx import): loading and checking an artifact must not pay for onnx."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TensorInfo:
    name: str
    shape: tuple  # ints, or strings for symbolic dims, None for unknown
    dtype: str

    def to_json(self) -> dict:
        return {"name": self.name, "shape": list(self.shape), "dtype": self.dtype}

"""An ONNX graph as a torch module, so that `edgec distill` can fine-tune its weights with torch's
autograd and optimizers (the training framework is torch; this file only maps ONNX ops onto
torch functions, node by node, in the graph's order).

Trainable: the float32 initializers in a weight or bias slot (Conv/ConvTranspose W and B, Gemm
B and C, a MatMul's constant operand, BatchNormalization/LayerNormalization scale and bias,
PRelu's slope, and a constant operand of Add/Sub/Mul with more than one element: a bias or
per-channel scale written as an elementwise op). Everything else (shapes, running statistics,
scalars such as a Clip bound or a Pow exponent) stays a fixed buffer. BatchNormalization runs in
inference mode: its running statistics are part of the student, not re-estimated.

A QDQ student (`edgec quantize`'s output) trains quantization-aware: an integer initializer read by
a DequantizeLinear (a quantized weight or bias) becomes a float Parameter holding its dequantized
value, and every forward pass quantizes it again with its own fixed scale and zero point (round to
nearest even, clamped to the student's integer range) with a straight-through gradient;
QuantizeLinear on activations does the same with its fixed scale. `value(name)` gives the trained
integers back, on the same scales.

Why not onnx2torch: it imports torchvision at import time, and no torchvision release installs
beside the torch 2.13 CPU build edgec's machines use ('torchvision::nms does not exist'); the
ops a pruned CNN/MLP uses are few, and each is checked against onnxruntime before training
(edgec.distill checks the converted student's outputs)."""

from __future__ import annotations

import re

import numpy as np
import onnx_ir as ir
import torch

from edgec.distill_torch_ops import INT_RANGE, OPS, along, attr, round_ste
from edgec.errors import UnsupportedOpError
from edgec.ir.domains import is_onnx_domain, onnx_opset

# op -> input slots holding trainable weights (a constant there becomes a torch Parameter)
WEIGHT_SLOTS = {"Conv": (1, 2), "ConvTranspose": (1, 2), "Gemm": (0, 1, 2), "MatMul": (0, 1),
                "BatchNormalization": (1, 2), "LayerNormalization": (1, 2), "PRelu": (1,),
                "Add": (0, 1), "Sub": (0, 1), "Mul": (0, 1)}
MASKED_OPS = ("Conv", "ConvTranspose", "Gemm", "MatMul")  # their zero weights stay zero (pruning masks)
QDQ = ("QuantizeLinear", "DequantizeLinear")  # also in com.microsoft (edgec's Q/DQ below opset 13)


class QuantWeight:
    """A quantized initializer trained through its float value: fixed scale, zero point and range."""

    def __init__(self, q: np.ndarray, scale: np.ndarray, zp: np.ndarray | None, axis: int):
        self.dtype = q.dtype
        lo, hi = INT_RANGE[q.dtype]
        if q.dtype == np.int8 and q.min(initial=0) >= -127:
            lo = -127  # edgec's (and onnxruntime's) symmetric int8 weights never use -128
        self.lo, self.hi = lo, hi
        self.scale = along(torch.from_numpy(scale.astype(np.float32)), axis, q.ndim)
        self.zp = along(torch.from_numpy((zp if zp is not None else np.zeros_like(scale)).astype(np.float32)),
                         axis, q.ndim)
        self.initial = ((q.astype(np.float32) - self.zp.numpy()) * self.scale.numpy()).astype(np.float32)

    def integers(self, w):
        return torch.clamp(torch.round(w / self.scale) + self.zp, self.lo, self.hi)

    def fake(self, w):
        q = torch.clamp(round_ste(w / self.scale) + self.zp, self.lo, self.hi)
        return (q - self.zp) * self.scale

    def to_numpy(self, w) -> np.ndarray:
        return self.integers(w.detach()).numpy().astype(self.dtype)


def _key(name: str, taken: set[str]) -> str:
    """A ParameterDict key for an initializer name (no dots; unique)."""
    k = re.sub(r"\W", "_", name) or "w"
    while k in taken:
        k += "_"
    taken.add(k)
    return k


class OnnxModule(torch.nn.Module):
    """Runs `model`'s graph with torch ops. `params[name]` is the Parameter of initializer `name`,
    `masks[name]` the keep-mask (1 where the student's weight is non-zero) of a masked weight."""

    def __init__(self, model: ir.Model, file: str = "", batch1: bool = False):
        super().__init__()
        self.batch1 = batch1  # the model's inputs have a static batch of 1 (its Reshapes may say so)
        self.batch = 1  # the batch of the current forward pass
        self.graph = model.graph
        self.file = file
        self.opset = onnx_opset(model, 17)
        self.nodes = list(model.graph)
        for n in self.nodes:
            if (not is_onnx_domain(n.domain) and not (n.domain == "com.microsoft" and n.op_type in QDQ)) \
                    or n.op_type not in OPS:
                raise UnsupportedOpError(n.name or "", n.op_type, n.domain, self.opset, file,
                                         "edgec distill trains float Conv/Gemm/MatMul networks; this op has no "
                                         "torch mapping here")
        self.quant = self._quantized_weights()
        self.trainable = self._trainable() + list(self.quant)
        taken: set[str] = set()
        self.keys = {name: _key(name, taken) for name in self.trainable}
        self.weights = torch.nn.ParameterDict()
        self.consts: dict[str, torch.Tensor] = {}
        self.masks: dict[str, torch.Tensor] = {}
        masked = {n.inputs[1].name for n in self.nodes if n.op_type in MASKED_OPS and len(n.inputs) > 1
                  and n.inputs[1] is not None}
        masked |= {n.inputs[0].name for n in self.nodes if n.op_type in ("MatMul", "Gemm") and n.inputs[0] is not None}
        for name, v in self.graph.initializers.items():
            a = np.array(v.const_value.numpy())
            if name in self.quant:
                if self.quant[name].dtype != np.int32:  # a quantized weight (int32: a bias)
                    masked.add(name)
                a = self.quant[name].initial
            t = torch.from_numpy(a.copy())
            if name in self.trainable:
                self.weights[self.keys[name]] = torch.nn.Parameter(t)
                if name in masked and (a == 0).any():
                    self.masks[name] = torch.from_numpy(a != 0).to(t.dtype)
            else:
                self.consts[name] = t

    def _trainable(self) -> list[str]:
        inits = self.graph.initializers
        out = []
        for n in self.nodes:
            for slot in WEIGHT_SLOTS.get(n.op_type, ()):
                v = n.inputs[slot] if slot < len(n.inputs) else None
                if v is None or v.name not in inits or v.name in out:
                    continue
                t = inits[v.name].const_value
                if t is None or t.dtype != ir.DataType.FLOAT:
                    continue
                if n.op_type in ("Add", "Sub", "Mul") and int(np.prod(t.shape.numpy())) < 2:
                    continue
                out.append(v.name)
        return out

    def _quantized_weights(self) -> dict[str, QuantWeight]:
        """Integer initializers dequantized by a DequantizeLinear with a constant scale (and zero point)."""
        inits = self.graph.initializers
        out = {}
        for n in self.nodes:
            if n.op_type != "DequantizeLinear" or n.inputs[0] is None or n.inputs[0].name not in inits:
                continue
            consts = [None if i is None else inits.get(i.name) for i in n.inputs[1:3]]
            if consts[0] is None or (len(n.inputs) > 2 and n.inputs[2] is not None and consts[1] is None):
                continue
            q = np.array(inits[n.inputs[0].name].const_value.numpy())
            if q.dtype not in INT_RANGE or n.inputs[0].name in out:
                continue
            zp = None if len(consts) < 2 or consts[1] is None else np.array(consts[1].const_value.numpy())
            out[n.inputs[0].name] = QuantWeight(q, np.array(consts[0].const_value.numpy()), zp, attr(n, "axis", 1))
        return out

    def value(self, name: str) -> np.ndarray:
        """The trained initializer `name` in its ONNX form (integers again for a quantized weight)."""
        p = self.param(name)
        return self.quant[name].to_numpy(p) if name in self.quant else p.detach().numpy().copy()

    def param(self, name: str) -> torch.nn.Parameter:
        return self.weights[self.keys[name]]

    def apply_masks(self) -> None:
        """Zero again every weight the student had at zero (after an optimizer step)."""
        with torch.no_grad():
            for name, m in self.masks.items():
                self.param(name).mul_(m)

    def forward(self, feeds: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        env: dict[str, torch.Tensor] = dict(self.consts)
        env.update({k: self.weights[v] for k, v in self.keys.items()})
        env.update(feeds)
        self.batch = next(iter(feeds.values())).shape[0] if feeds else 1
        for n in self.nodes:
            args = [None if v is None or not v.name else env[v.name] for v in n.inputs]
            outs = OPS[n.op_type](self, n, args)
            if not isinstance(outs, tuple):
                outs = (outs,)
            for v, t in zip(n.outputs, outs):
                if v is not None and v.name and t is not None:
                    env[v.name] = t
        return {v.name: env[v.name] for v in self.graph.outputs}


# --- op mappings: fn(module, node, inputs) -> tensor or tuple of tensors -------------------------

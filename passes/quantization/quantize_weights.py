"""quantize-weights: weight-only block quantization of MatMul / Gemm into com.microsoft MatMulNBits.

    y = MatMul(x, W)        ->  y = MatMulNBits(x, Bq, scales[, zero_points])
    y = Gemm(x, W, C)       ->  y = MatMulNBits(x, Bq, scales[, zero_points], bias=C)

W [K, N] (Gemm: transB folded) is quantized to `bits` (4 or 8) per output column and per block of
`group_size` rows along K (_nbits.py: asymmetric by default, symmetric with symmetric=1; each block's
range shrunk where clipping its largest weights lowers its squared error).
Activations stay float in the graph; `accuracy_level` (MatMulNBits' attribute, default 4 as
onnxruntime-genai's CPU int4 models have it) lets the kernel quantize them to int8 per block and use
integer dot products (onnxruntime and edgec both do; 0 keeps float32 arithmetic). This is the LLM recipe (llama.cpp's Q4/Q8, onnxruntime-genai's int4
models), where decode is bound by reading the weights and 4-bit weights read 8x fewer bytes.
onnxruntime runs the result (its MatMulNBits kernel); edgec's backend runs it with the dequantize
fused into the matmul kernel (fp32 weights are never materialized).

Taken in: what quantize-dynamic takes (a float32 top-level MatMul with a constant finite 2-D B, a
Gemm with constant B, alpha = beta = 1, transA = 0, C absent or constant along the output's last
axis), and a MatMul whose B is Transpose of such a constant (a tied LM head; the Transpose is
dropped when nothing else reads it, the constant stays for its other readers), with A of known rank >= 2 and K >= 16 (K is zero-padded to whole groups); not named in `exclude`. A MatMul of two
activations stays float. Idempotent: a quantized node is a MatMulNBits, which is not matched.

method: "rtn" rounds each block to its nearest levels (no data); "gptq" (_gptq.py) quantizes each
weight against the second moments of its input X, measured by running the float model in
onnxruntime on calibration samples (`data`, `samples`): it minimizes the error of X W rather
than of W. A decoder with a KV cache (edgec.llm_decode's inputs) is calibrated on prefills of token
sequences (`data`: files of token ids; none: seeded random tokens over the vocabulary, `tokens`
long), any other model on `_data.samples` (files, images, or seeded random inputs).

int8: comma-separated glob patterns (fnmatch) on node or weight names whose matmuls get 8 bits
when `bits` is 4 (llama.cpp's mixed recipes keep the most sensitive tensors wider the same way:
in a deep decoder the first blocks' errors grow through every later block)."""

from __future__ import annotations

import fnmatch
import logging

import numpy as np
import onnx_ir as ir

from edgec.errors import PipelineError
from edgec.infra.pass_base import Pass, PassResult, register_pass
from edgec.ir.constants import const_array
from edgec.ir.domains import is_onnx_domain
from edgec.passes.quantization import _data
from edgec.passes.quantization._calibrate import collect_grams
from edgec.passes.quantization._gptq import gptq_blocks
from edgec.passes.quantization._nbits import pack, quantize_blocks
from edgec.passes.quantization._qdq import MS, Builder
from edgec.passes.quantization.quantize_dynamic import matmul_weight

logger = logging.getLogger(__name__)
METHODS = ("rtn", "gptq")
MIN_K = 16  # below this, a matmul is too small for block quantization to pay (and MatMulNBits' least block)


def _transposed_constant(node: ir.Node) -> np.ndarray | None:
    """B = Transpose(W) of a constant float32 [N, K] W (a tied LM head: W is also the embedding
    table) as [K, N]; None otherwise."""
    b = node.inputs[1] if node.op_type == "MatMul" and len(node.inputs) > 1 else None
    t = b.producer() if b is not None else None
    if t is None or t.op_type != "Transpose" or not is_onnx_domain(t.domain):
        return None
    perm = t.attributes.get("perm")
    w = const_array(t.inputs[0])
    if w is None or w.ndim != 2 or w.dtype != np.float32 or not np.all(np.isfinite(w)):
        return None
    if perm is not None and list(perm.as_ints()) != [1, 0]:
        return None
    return w.T


def token_vocab(model: ir.Model) -> int | None:
    """Rows of the embedding table the graph input `input_ids` is gathered from (the vocabulary),
    following reshapes between the two (exporters flatten the ids first)."""
    todo = [v for v in model.graph.inputs if v.name == "input_ids"]
    while todo:
        v = todo.pop()
        for use in v.uses():
            node = use.node
            if node.op_type == "Gather" and use.idx == 1:
                table = const_array(node.inputs[0])
                if table is not None and table.ndim >= 1:
                    return int(table.shape[0])
            elif node.op_type in ("Reshape", "Unsqueeze", "Squeeze", "Flatten", "Cast") and use.idx == 0:
                todo.append(node.outputs[0])
    return None


def _grams(model: ir.Model, nodes: list[ir.Node], o: dict) -> dict[str, np.ndarray]:
    """X^T X of each node's input over the calibration samples (one onnxruntime pass for all)."""
    from edgec.ir.analysis import graph_inputs
    from edgec.llm_decode import is_decoder

    inputs = graph_inputs(model)
    vocab = token_vocab(model)
    if is_decoder(i.name for i in inputs) and vocab is not None:
        feeds = _data.token_samples(inputs, vocab, o["data"] or None, int(o["samples"]), int(o["seed"]), int(o["tokens"]))
    else:
        feeds = _data.samples(inputs, o["data"] or None, int(o["samples"]), int(o["seed"]), o["preprocess"])
    if not o["data"]:
        logger.warning("quantize-weights: GPTQ calibrates on seeded random %s (give --calibration-data: "
                       "real inputs calibrate better)", "tokens" if vocab is not None else "inputs in [-1, 1)")
    names = sorted({n.inputs[0].name for n in nodes})
    grams, count = collect_grams(model, names, feeds)
    if count == 0:
        raise PipelineError(f"quantize-weights: no calibration samples in '{o['data']}'")
    return grams


def _names(node: ir.Node) -> tuple[str, ...]:
    """What `int8` patterns match: the node's name and its weight's (a tied head: the table's)."""
    b = node.inputs[1]
    t = b.producer()
    weight = t.inputs[0] if t is not None and t.op_type == "Transpose" else b
    return tuple(n for n in (node.name, weight.name) if n)


def _takes(node: ir.Node) -> np.ndarray | None:
    if node.op_type not in ("MatMul", "Gemm") or node.inputs[0] is None or node.inputs[0].dtype != ir.DataType.FLOAT:
        return None
    w = matmul_weight(node)
    if w is None:
        w = _transposed_constant(node)
    a = node.inputs[0]
    if w is None or a.shape is None or len(a.shape) < 2 or w.shape[0] < MIN_K or w.shape[1] == 0:
        return None
    return w


@register_pass
class QuantizeWeights(Pass):
    """MatMul/Gemm by constant weights -> MatMulNBits: 4- or 8-bit weights per block along K, float activations."""

    name = "quantize-weights"
    changes_numerics = True
    # asymmetric by default: the block's [min, max] over all 2^bits levels (GPT-2 100M, random
    # weights, int4 g32: logits cosine vs fp32 0.973 against 0.968 symmetric, for 1/8 bit more)
    options = {"bits": 4, "group_size": 32, "symmetric": False, "accuracy_level": 4, "exclude": "",
               "method": "rtn", "data": "", "samples": 32, "seed": 0, "preprocess": "", "tokens": 128, "int8": ""}

    def float_arithmetic(self, ctx) -> bool:
        return int(self.opts["accuracy_level"]) < 4

    def run(self, model: ir.Model, ctx) -> PassResult:
        o = self.opts
        bits, group = int(o["bits"]), int(o["group_size"])
        if bits not in (4, 8):
            raise PipelineError(f"quantize-weights: bits must be 4 or 8, got {bits}")
        level = int(o["accuracy_level"])
        if level not in (0, 1, 2, 3, 4):
            raise PipelineError(f"quantize-weights: accuracy_level must be 0-4, got {level}")
        if group < 16 or group & (group - 1):
            raise PipelineError(f"quantize-weights: group_size must be a power of 2 >= 16, got {group}")
        if o["method"] not in METHODS:
            raise PipelineError(f"quantize-weights: method must be one of {', '.join(METHODS)}, got '{o['method']}'")
        exclude = {s for s in o["exclude"].split(",") if s}
        todo = [(n, w) for n in list(model.graph) if n.name not in exclude
                for w in [_takes(n)] if w is not None]
        if not todo:
            return PassResult(model, False)
        grams = _grams(model, [n for n, _ in todo], o) if o["method"] == "gptq" else {}
        model.opset_imports.setdefault(MS, 1)
        b = Builder(model, MS)
        wider = [p for p in o["int8"].split(",") if p]
        for node, w in todo:
            gram = grams.get(node.inputs[0].name)
            nbits = 8 if any(fnmatch.fnmatchcase(name, p) for p in wider for name in _names(node)) else bits
            self._rewrite(b, node, w, nbits, group, bool(o["symmetric"]), level, gram)
        return PassResult(model, True)

    @staticmethod
    def _rewrite(b: Builder, node: ir.Node, w: np.ndarray, bits: int, group: int, symmetric: bool, level: int,
                 gram: np.ndarray | None) -> None:
        k, n = w.shape
        if gram is None:
            q, zp, scale = quantize_blocks(w, bits, group, symmetric)
        else:
            q, zp, scale = gptq_blocks(w, gram, bits, group, symmetric)
        packed, zp_packed = pack(q, zp, bits, group, symmetric)
        base = node.name or node.outputs[0].name
        ins = [node.inputs[0], b.const(f"{base}_W_q{bits}", packed), b.const(f"{base}_W_scales", scale)]
        ins.append(None if zp_packed is None else b.const(f"{base}_W_zero_points", zp_packed))
        c = node.inputs[2] if node.op_type == "Gemm" and len(node.inputs) > 2 else None
        if c is not None:
            cv = const_array(c).astype(np.float32).reshape(-1)
            ins += [None, b.const(f"{base}_bias", np.broadcast_to(cv, (n,)).copy())]
        while ins[-1] is None:
            ins.pop()
        y = node.outputs[0]
        new = ir.node("MatMulNBits", ins, {"K": k, "N": n, "bits": bits, "block_size": group,
                                                  "accuracy_level": level}, domain=MS,
                      name=b.namer.fresh(f"{base}_nbits"))
        out = new.outputs[0]
        out.type, out.shape = ir.TensorType(ir.DataType.FLOAT), y.shape
        transpose = node.inputs[1].producer()
        b.replace_node(node, [new], out)
        if transpose is not None and not transpose.outputs[0].uses() and not transpose.outputs[0].is_graph_output():
            b.graph.remove(transpose, safe=True)  # a tied LM head's Transpose: its table stays for the Gather

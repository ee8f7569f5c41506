"""onnxruntime as the numerical reference: seeded inputs and sessions (comparisons: edgec.compare)."""

from __future__ import annotations

import numpy as np
import onnx

from edgec.ir.analysis import TensorInfo


def seeded_inputs(infos: list[TensorInfo], seed: int = 0, default_dim: int = 1,
                  dims: dict[str, int] | None = None) -> dict[str, np.ndarray]:
    """Deterministic inputs: floats ~ U(-1, 1), ints in [0, 4), bools random. A symbolic dim is
    `dims[name]`, else `default_dim`."""
    rng = np.random.default_rng(seed)
    dims = _decoder_dims(infos, dict(dims or {}), default_dim)
    out = {}
    for info in infos:
        shape = tuple(d if isinstance(d, int) else dims.get(d, default_dim) for d in info.shape)
        dt = np.dtype(info.dtype) if info.dtype != "unknown" else np.dtype("float32")
        if dt.kind == "f":
            a = rng.uniform(-1, 1, size=shape).astype(dt)
        elif dt.kind in "iu":
            a = rng.integers(0, 4, size=shape).astype(dt)
        elif dt.kind == "b":
            a = rng.integers(0, 2, size=shape).astype(bool)
        else:
            raise ValueError(f"cannot generate inputs of dtype {dt} for '{info.name}'")
        out[info.name] = np.asarray(a, dtype=dt) if dt.kind != "b" else np.asarray(a)
    _decoder_values(out)
    return out


def _decoder_dims(infos: list[TensorInfo], dims: dict[str, int], default_dim: int) -> dict[str, int]:
    """A decoder's inputs in optimum's interface (edgec.llm_decode: input_ids [batch, new],
    attention_mask [batch, total], past_key_values.* [batch, heads, past, head_dim]) are only
    consistent when total = past + new: the symbolic total follows the other two (a past of fixed
    length, --kv-cache's buffers, is not the past: total is then free, at least new)."""
    by = {i.name: i for i in infos}
    ids, mask = by.get("input_ids"), by.get("attention_mask")
    pasts = [i for i in infos if i.name.startswith("past_key_values.") and len(i.shape) == 4]
    if ids is None or mask is None or not pasts or len(ids.shape) != 2 or len(mask.shape) != 2:
        return dims
    total, new, past = mask.shape[1], ids.shape[1], pasts[0].shape[2]
    if not isinstance(total, str) or total in dims:
        return dims
    size_new = new if isinstance(new, int) else dims.get(new, default_dim)
    if isinstance(past, str):
        dims[total] = dims.get(past, default_dim) + size_new
    else:
        dims[total] = max(dims.get(total, default_dim), size_new)
    return dims


def _decoder_values(feed: dict[str, np.ndarray]) -> None:
    """A decoder's attention mask attends to everything (ones) and its positions count on from
    the past (total - new .. total - 1), as a real decode step's do."""
    ids, mask = feed.get("input_ids"), feed.get("attention_mask")
    if ids is None or mask is None or ids.ndim != 2 or mask.ndim != 2 or not any(
            n.startswith("past_key_values.") for n in feed):
        return
    feed["attention_mask"] = np.ones_like(mask)
    pos = feed.get("position_ids")
    if pos is not None and pos.shape == ids.shape:
        start = mask.shape[1] - ids.shape[1]
        feed["position_ids"] = np.broadcast_to(np.arange(start, start + ids.shape[1]), ids.shape).astype(pos.dtype)


def ort_session(model: onnx.ModelProto | bytes | str, threads: int = 1, optimized: bool = False):
    """An onnxruntime CPU session. As a reference its graph optimizations are off (`optimized`
    False): a result then comes from onnxruntime's kernels alone, not from its own rewrites;
    benchmarks that time onnxruntime pass optimized=True."""
    from edgec.user_cache import import_onnxruntime

    ort = import_onnxruntime()

    so = ort.SessionOptions()
    if not optimized:
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    so.log_severity_level = 4  # errors come back as exceptions; its log would repeat them on stderr
    data = model.SerializeToString() if isinstance(model, onnx.ModelProto) else model
    return ort.InferenceSession(data, so, providers=["CPUExecutionProvider"])


def run_ort(model: onnx.ModelProto | bytes | str, inputs: dict[str, np.ndarray], threads: int = 1,
            exact: bool = True) -> dict[str, np.ndarray]:
    """onnxruntime's outputs; `exact`: uint8 x int8 products computed exactly on every CPU
    (edgec.reference_exact). Probes that only ask whether onnxruntime runs the model as given pass
    False, so that a failure of edgec's re-encoding is never read as onnxruntime refusing the model."""
    if exact:
        from edgec.reference_exact import exact_reference

        model, inputs = exact_reference(model, inputs)
    sess = ort_session(model, threads)
    names = [o.name for o in sess.get_outputs()]
    feed = {i.name: inputs[i.name] for i in sess.get_inputs()}
    return dict(zip(names, sess.run(names, feed)))


def run_ort_ir(model, inputs: dict[str, np.ndarray], threads: int = 1) -> dict[str, np.ndarray]:
    """Run an edgec IR model in onnxruntime. Models whose weights are external data are saved
    (weights included) to a temporary directory and run by path; others go through memory."""
    import tempfile

    import onnx_ir as ir

    if not any(isinstance(v.const_value, ir.ExternalTensor) for v in model.graph.initializers.values()):
        return run_ort(ir.serde.serialize_model(model), inputs, threads)
    with tempfile.TemporaryDirectory(prefix="edgec-ort-") as tmp:
        path = f"{tmp}/model.onnx"
        ir.save(model, path, external_data="weights.bin")
        return run_ort(path, inputs, threads)


_TO_NCHW, _TO_NHWC = (0, 3, 1, 2), (0, 2, 3, 1)


def run_reference_model(path: str, feed: dict[str, np.ndarray], io_layout: dict[str, str] | None = None,
                        threads: int = 1) -> dict[str, np.ndarray]:
    """Run the ONNX model at `path` in onnxruntime on `feed` (the artifact's inputs) and return its
    outputs in the artifact's layout. `io_layout` ({name: "NHWC"}, from the artifact's metadata)
    names the 4-D inputs/outputs the artifact takes and gives as NHWC where the model has NCHW.

    A reference whose inputs are not the artifact's (names), that is not a readable ONNX model, or
    that onnxruntime cannot run is the user's error (EdgecError, exit 2), named with the file."""
    from edgec.errors import EdgecError
    from edgec.ir.loader import load_proto
    from edgec.reference_exact import exact_reference

    io_layout = io_layout or {}
    load_proto(path)  # same validation as compile: readable, ONNX, external data inside its directory
    # by path (onnxruntime resolves external data beside it) unless uint8 x int8 products are
    # re-encoded to be computed exactly on every CPU (edgec.reference_exact; a failure there is edgec's)
    ref, feed = exact_reference(str(path), to_model_layout(feed, io_layout))
    try:
        sess = ort_session(ref)
    except Exception as e:
        raise EdgecError(f"{path}: onnxruntime cannot load the reference model: {' '.join(str(e).split())[:300]}") from None
    want = [i.name for i in sess.get_inputs()]
    missing = [n for n in want if n not in feed]
    if missing:
        raise EdgecError(f"{path}: the reference model takes input(s) {missing} that the artifact does not "
                         f"(artifact inputs: {sorted(feed)}); compare with the model the artifact was compiled from")
    names = [o.name for o in sess.get_outputs()]
    try:
        outs = sess.run(names, {n: feed[n] for n in want})
    except Exception as e:
        raise EdgecError(f"{path}: onnxruntime failed to run the reference model: {' '.join(str(e).split())[:300]}") from None
    return to_artifact_layout(dict(zip(names, outs)), io_layout)


def to_model_layout(tensors: dict[str, np.ndarray], io_layout: dict[str, str]) -> dict[str, np.ndarray]:
    """Tensors an artifact takes/gives as NHWC (io_layout {name: "NHWC"}) in the model's NCHW."""
    return {n: np.ascontiguousarray(a.transpose(_TO_NCHW)) if io_layout.get(n) == "NHWC" and a.ndim == 4 else a
            for n, a in tensors.items()}


def to_artifact_layout(tensors: dict[str, np.ndarray], io_layout: dict[str, str]) -> dict[str, np.ndarray]:
    """The model's NCHW tensors in an artifact's NHWC where io_layout says so."""
    return {n: np.ascontiguousarray(a.transpose(_TO_NHWC)) if io_layout.get(n) == "NHWC" and a.ndim == 4 else a
            for n, a in tensors.items()}


def node_rejected_by_onnxruntime(node, opset_imports: dict[str, int], constants: dict[str, np.ndarray]) -> str | None:
    """Why onnxruntime refuses to run `node` (an onnx_ir Node) alone on inputs of its static
    shapes and dtypes (constant inputs with their values), or None if it runs it, or if that
    cannot be decided (a dynamic shape, an unknown dtype). Lets edgec tell a node that is invalid
    in the model (exit 2) from one its own lowering got wrong (exit 1)."""
    import onnx_ir as ir
    from onnx import helper, numpy_helper

    graph_inputs, inits, feed = [], [], {}
    rng = np.random.default_rng(0)
    for v in node.inputs:
        if v is None or not v.name or v.name in feed or any(i.name == v.name for i in inits):
            continue
        if v.name in constants:
            inits.append(numpy_helper.from_array(np.asarray(constants[v.name]), v.name))
            continue
        if v.shape is None or v.dtype is None or not all(isinstance(d, int) for d in v.shape):
            return None
        dtype = np.dtype(v.dtype.numpy())
        a = rng.uniform(-1, 1, tuple(v.shape)) if dtype.kind == "f" else rng.integers(0, 2, tuple(v.shape))
        feed[v.name] = np.asarray(a).astype(dtype)
        graph_inputs.append(helper.make_tensor_value_info(v.name, int(v.dtype), list(v.shape)))
    outputs = [onnx.ValueInfoProto(name=o.name) for o in node.outputs if o.name]  # types: inferred
    try:
        graph = helper.make_graph([ir.serde.serialize_node(node)], "node", graph_inputs, outputs, inits)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid(d, v) for d, v in opset_imports.items()])
        model.ir_version = min(model.ir_version, 10)
    except Exception:
        return None
    try:
        run_ort(model, feed, exact=False)
    except Exception as e:
        return " ".join(str(e).split())[:200]
    return None

"""edgec's Python API (`import edgec`): compile a model, load an artifact, run it.

    import edgec
    art = edgec.compile("model.onnx", target="armv8", output="model.art", quantize="int8-dynamic")
    art = edgec.load("model.art")
    outputs = art.run({"input": x})          # dict name -> numpy array (ARM artifacts under qemu)

The CLI's `compile` is this call with flags; both go through edgec.api.compile_model.

Errors (all `edgec.errors.EdgecError`; `.one_line()` gives the CLI's message):
- `ModelLoadError`: the model file is missing, unreadable, not ONNX, truncated or unsafe;
- `ModelValidationError`, `UnsupportedOpError`, `UnsupportedTypeError`: the model is inconsistent or
  uses what edgec cannot compile for the target (node, op and file named);
- `PipelineError`: bad options (unknown pass, pipeline text, quantize mode, --emit);
- `TargetError`: unknown target, or a missing cross toolchain / emulator;
- `ArtifactError`: a damaged or foreign artifact, or inputs that do not fit it (names, shapes, dtypes);
- `GuardError`: a run-time guard of the model failed (e.g. a token id beyond the vocabulary);
- `InternalError`, `VerificationError`: edgec's own bug (a pass or the backend crashed, or `verify`
  found changed results): please report it.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import onnx

    from edgec.artifact import Artifact


def compile(model: str | os.PathLike | onnx.ModelProto, target: str = "host", *,  # noqa: A001 - edgec.compile
            output: str | os.PathLike | None = None, passes: str | None = None, opt_level: int = 2,
            disable: Sequence[str] = (), input_shapes: Mapping[str, Sequence[int]] | None = None,
            symbolic_dims: bool = False, dims: Mapping[str, tuple[int, int]] | None = None,
            quantize: str | None = None, calibration_data: str | os.PathLike | None = None,
            group_size: int | None = None, prune: str | None = None, emit: Sequence[str] | None = None,
            bundle: bool | None = None, records: str | os.PathLike | None = None, threads: int | None = None, plugins: Sequence[str] = (),
            verify: bool = False, mcpu: str | None = None, mattr: str | None = None) -> Artifact:
    """Compile `model` (a path, or an onnx.ModelProto) for `target` (see `edgec targets`) into the
    artifact directory `output` (None: a new temporary directory, the caller's to keep or delete);
    returns the loaded Artifact. The keywords mean what the CLI flags of the same names mean
    (`edgec compile --help`): `quantize` one of `edgec quantize`'s modes, `prune` 'MODE[:RATIO]'
    (`edgec prune`'s modes, pruned before quantizing), `dims` name -> (lo, hi)
    bounds of symbolic dims, `emit` a subset of edgec.api.EMITS."""
    from edgec.api import CompileOptions, compile_model
    from edgec.errors import PipelineError

    opts = CompileOptions(target=target, passes=passes, opt_level=opt_level, disabled=tuple(disable),
                          input_shapes={k: list(v) for k, v in (input_shapes or {}).items()},
                          symbolic_dims=symbolic_dims, dim_bounds={k: tuple(v) for k, v in (dims or {}).items()},
                          verify=verify, mcpu=mcpu, mattr=mattr, plugins=tuple(str(p) for p in plugins),
                          records=str(records) if records else None, threads=threads, bundle=bundle,
                          emit=frozenset(emit) if emit is not None else None)
    if quantize is not None:
        from edgec.quantize import QuantizeOptions, quantize_options

        opts.quantize = quantize_options(QuantizeOptions(mode=quantize, group_size=group_size,
                                                         calibration_data=str(calibration_data) if calibration_data else None))
    elif calibration_data is not None or group_size is not None:
        raise PipelineError("calibration_data / group_size need quantize=MODE")
    if prune is not None:
        from edgec.prune import parse_prune_spec

        opts.prune = parse_prune_spec(prune)
    out = Path(output) if output is not None else Path(tempfile.mkdtemp(prefix="edgec-")) / "model.art"
    if not isinstance(model, (str, os.PathLike)):
        return _compile_proto(model, out, opts)
    return compile_model(model, out, opts)


def _compile_proto(proto, out: Path, opts) -> Artifact:
    """A ModelProto is saved to a private temporary file (external data inline) and compiled."""
    import onnx

    from edgec.api import compile_model

    with tempfile.TemporaryDirectory(prefix="edgec-model-") as d:
        path = Path(d) / f"{proto.graph.name or 'model'}.onnx"
        onnx.save_model(proto, str(path))
        return compile_model(path, out, opts)


def load(path: str | os.PathLike) -> Artifact:
    """The artifact at `path`, checked (sizes and hashes of every file) before anything is loaded."""
    from edgec.artifact import load_artifact

    return load_artifact(path)

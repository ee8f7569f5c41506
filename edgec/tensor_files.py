"""Tensor files on the command line: `name=file.npy|.pb` inputs, output summaries, .npz outputs."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgec.errors import ArtifactError
from edgec.safe_read import check_regular_file, read_regular_file


def load_tensor_arg(spec: str) -> tuple[str, np.ndarray]:
    """Parse a `name=file` argument; the file is .npy or an ONNX TensorProto .pb, and a regular
    file (a FIFO or /dev/zero would block or never end)."""
    if "=" not in spec:
        raise ArtifactError(f"--input '{spec}' must look like name=file.npy")
    name, file = spec.split("=", 1)
    p = Path(file)
    what = f"input file {p}"
    if p.suffix == ".pb":
        data = read_regular_file(p, what, ArtifactError)  # at most the protobuf limit, 2 GiB
    else:
        check_regular_file(p, what, ArtifactError)  # np.load reads a regular file's declared size
    try:
        if p.suffix == ".pb":
            import onnx
            from onnx import numpy_helper

            t = onnx.TensorProto()
            t.ParseFromString(data)
            return name, numpy_helper.to_array(t)
        return name, np.load(p, allow_pickle=False)
    except Exception as e:
        raise ArtifactError(f"{p}: cannot read tensor ({type(e).__name__}: {' '.join(str(e).split())[:120]})") from None


def summarize(name: str, a: np.ndarray) -> str:
    """One line: name, dtype, shape, min/max/mean."""
    if a.size and a.dtype.kind in "fiub":
        f = a.astype(np.float64)
        stats = f"min {f.min():.6g} max {f.max():.6g} mean {f.mean():.6g}"
    else:
        stats = "empty"
    return f"{name}: {a.dtype}{list(a.shape)} {stats}"


def save_npz_atomic(path: str, outputs: dict) -> None:
    """Write all outputs to an .npz via a temporary file and a rename (no partial file); the name is
    used as given (no .npz appended). An unwritable path is a one-line OutputPathError."""
    import io

    from edgec.output_paths import write_file_atomic

    buf = io.BytesIO()  # a zip needs a seekable file; /dev/null is not
    np.savez(buf, **outputs)
    write_file_atomic(path, buf.getvalue(), "outputs file")

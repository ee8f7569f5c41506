"""edgec: a compiler from trained ONNX models to fast, verified code on edge devices.

    import edgec
    art = edgec.compile("model.onnx", target="x86-64", output="model.art")
    y = edgec.load("model.art").run({"input": x})

The API lives in edgec.python_api (documented there with the errors it raises); it is imported on
first use, so that `import edgec` (and `edgec --version`) stays fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

__version__ = "0.1.0"
__all__ = ["__version__", "compile", "load"]

if TYPE_CHECKING:
    from edgec.python_api import compile, load  # noqa: A004 - edgec.compile is the API's name


def __getattr__(name: str):
    if name in ("compile", "load"):
        from edgec import python_api

        return getattr(python_api, name)
    raise AttributeError(f"module 'edgec' has no attribute {name!r}")

"""A misbehaving stand-in for `python -m edgec.cli`, for the harness's own tests
(test_harness.py): each first argument breaks one rule the harness must catch."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time


def main(argv: list[str]) -> int:
    what = argv[1] if argv[0] == "compile" else argv[0]  # `compile WHAT -o OUT`: the harness's -o handling
    if what == "ok":
        return 0
    if what == "clean-error":
        print("edgec: error: model.onnx: not an ONNX model", file=sys.stderr)
        return 2
    if what == "two-lines":
        print("warning: something\nedgec: error: model.onnx: bad", file=sys.stderr)
        return 2
    if what == "internal":
        print("edgec: internal error: ValueError: x (rerun with --debug for the traceback)", file=sys.stderr)
        return 1
    if what == "creates-file":
        open("stray.txt", "w").close()
        print("edgec: error: bad", file=sys.stderr)
        return 2
    if what == "deletes-user-file":
        os.unlink("docs/notes.txt")
        return 0
    if what == "damages-output":
        out = argv[argv.index("-o") + 1]
        with open(os.path.join(out, "metadata.json"), "a") as f:
            f.write(" ")
        print("edgec: error: bad", file=sys.stderr)
        return 2
    if what == "leaves-tmp":
        tempfile.mkdtemp(prefix="edgec-")
        print("edgec: error: bad", file=sys.stderr)
        return 2
    if what == "hangs":
        time.sleep(3600)
    if what == "big":
        block = bytearray(int(argv[1]) << 20)
        for i in range(0, len(block), 4096):
            block[i] = 1
        print("edgec: error: bad", file=sys.stderr)
        return 2
    if what == "grandchild-lingers":
        if os.fork() == 0:
            time.sleep(3600)
            os._exit(0)
        print("edgec: error: bad", file=sys.stderr)
        return 2
    if what == "compile-slowly":  # like a compile: a temporary dir beside -o, removed on SIGTERM only if handled
        out = argv[argv.index("-o") + 1]
        tmp = os.path.join(os.path.dirname(os.path.abspath(out)), f".{os.path.basename(out)}.tmp-{os.getpid()}")
        os.mkdir(tmp)
        try:
            time.sleep(3600)
        finally:
            shutil.rmtree(tmp)
    return 3


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

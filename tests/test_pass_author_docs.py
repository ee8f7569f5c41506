"""The pass author's guides cannot rot: docs/writing-a-pass.md, docs/boards.md and
docs/adding-an-op-lowering.md mark every code block, and each mark is checked here.

    <!-- file: PATH -->      the block is the whole file PATH (repository-relative)
    <!-- from: PATH -->      the block appears verbatim in PATH
    <!-- run -->             a shell block, run in order with the doc's other run blocks in a
                             scratch directory holding a copy of examples/ (`pip install X`
                             installs into a private --target directory on PYTHONPATH)
    <!-- run: in-suite -->   a shell block running a test file of this suite (checked to exist,
                             not run twice)
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import EXAMPLES, ROOT

DOCS = ("docs/writing-a-pass.md", "docs/boards.md", "docs/adding-an-op-lowering.md")
_BLOCK = re.compile(r"(?:<!-- (?P<kind>file|from|run)(?::\s*(?P<arg>\S+))? -->\n)?```(?P<lang>[\w-]*)\n(?P<body>.*?)^```",
                    re.S | re.M)


def blocks(doc: str) -> list[dict]:
    return [m.groupdict() for m in _BLOCK.finditer((ROOT / doc).read_text())]


@pytest.mark.parametrize("doc", DOCS)
def test_every_code_block_is_marked(doc):
    found = blocks(doc)
    assert found, f"{doc} has no code blocks"
    unmarked = [b["body"][:60] for b in found if not b["kind"]]
    assert not unmarked, f"{doc}: code blocks without a file/from/run mark: {unmarked}"


@pytest.mark.parametrize("doc", DOCS)
def test_file_blocks_are_the_files(doc):
    for b in blocks(doc):
        if b["kind"] in ("file", "from"):
            text = (ROOT / b["arg"]).read_text()
            if b["kind"] == "file":
                assert b["body"] == text, f"{doc}: the block for {b['arg']} differs from the file"
            else:
                assert b["body"] in text, f"{doc}: the block from {b['arg']} is not in the file"


@pytest.mark.parametrize("doc", DOCS)
def test_in_suite_blocks_name_suite_tests(doc):
    for b in blocks(doc):
        if b["kind"] == "run" and b["arg"] == "in-suite":
            paths = re.findall(r"\btests/\S+\.py", b["body"])
            assert paths and all((ROOT / p).is_file() for p in paths), b["body"]


def _scratch(tmp_path: Path) -> tuple[Path, dict]:
    work = tmp_path / "work"
    for sub in ("custom_pass", "plugins", "boards"):
        shutil.copytree(EXAMPLES / sub, work / "examples" / sub, ignore=shutil.ignore_patterns("build", "*.egg-info",
                                                                                                 "__pycache__"))
    site = tmp_path / "site"
    env = {**os.environ, "PATH": os.pathsep.join([os.path.dirname(sys.executable), os.environ.get("PATH", "")]),
           "PYTHONPATH": str(site), "EDGEC_COMPILE_CACHE": "off", "SITE": str(site)}
    return work, env


def _shell(body: str) -> str:
    """The block as a script; `pip install X` installs offline into $SITE (no venv change)."""
    return re.sub(r"^pip install ", "python -m pip install -q --no-deps --no-build-isolation --no-index "
                                    '--target "$SITE" ', body, flags=re.M)


@pytest.mark.parametrize("doc", DOCS)
def test_run_blocks(doc, tmp_path):
    runs = [b for b in blocks(doc) if b["kind"] == "run" and b["arg"] is None]
    if any(re.search(r"-t armv8|rpi3", b["body"]) for b in runs):
        from tests.conftest import require_target_tools

        require_target_tools("armv8")
    work, env = _scratch(tmp_path)
    for b in runs:
        p = subprocess.run(["bash", "-e", "-c", _shell(b["body"])], cwd=work, env=env, capture_output=True,
                           text=True, timeout=900)
        assert p.returncode == 0, f"{doc}: block failed (exit {p.returncode}):\n{b['body']}\n{p.stdout}\n{p.stderr}"

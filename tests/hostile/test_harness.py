"""The harness catches what it claims to catch: each rule broken on purpose by a fake edgec
(tests/hostile/fake_edgec.py) is reported, and a clean one-line error is not. Fast: no TVM."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from tests.hostile.harness import ROOT, Case, CaseDir, CaseFailure, Session, Spec, run_case


class FakeSession(Session):
    module = "tests.hostile.fake_edgec"

    def env(self, tmpdir: Path) -> dict[str, str]:
        env = super().env(tmpdir)
        env["PYTHONPATH"] = str(ROOT)
        return env

    @property
    def artifact(self) -> Path:
        art = self.root / "fake-artifact"
        if not art.exists():
            art.mkdir(parents=True)
            (art / "metadata.json").write_text('{"format": "edgec-artifact/1", "library": "model.so"}')
            (art / "model.so").write_bytes(b"\x7fELF fake")
        return art


@pytest.fixture
def judge(tmp_path):
    session = FakeSession(tmp_path)

    def _judge(spec_of, name="case"):
        fails, out = run_case(Case(name, spec_of, "self"), session, tmp_path / name)
        return " | ".join(fails), out

    return _judge


def test_clean_error_passes(judge):
    fails, out = judge(lambda d: Spec(["clean-error", "-o", "out"], words=("model.onnx",)))
    assert fails == "" and out.returncode == 2
    assert out.maxrss_kib < 100 * 1024  # the launcher's child does not inherit pytest's RSS


@pytest.mark.parametrize("what, expected", [
    ("two-lines", "2 lines on stderr"),
    ("internal", "exit 1, expected 2"),
    ("ok", "exit 0, expected 2"),
    ("creates-file", "created: 'stray.txt'"),
    ("leaves-tmp", "left in TMPDIR"),
    ("grandchild-lingers", "processes still running"),
])
def test_broken_rule_is_reported(judge, what, expected):
    fails, _ = judge(lambda d: Spec([what, "-o", "out"]))
    assert expected in fails


def test_words_are_required(judge):
    fails, _ = judge(lambda d: Spec(["clean-error"], words=("other.onnx",)))
    assert "does not name ['other.onnx']" in fails


def test_user_file_deleted_is_reported(judge):
    def spec(d: CaseDir) -> Spec:
        d.write("docs/notes.txt", "mine\n")
        return Spec(["deletes-user-file"], code=0)

    fails, _ = judge(spec)
    assert "deleted: 'docs/notes.txt'" in fails


def test_previous_artifact_damaged_is_reported(judge):
    fails, _ = judge(lambda d: Spec(["compile", "damages-output", "-o", "out"]))
    assert "output out not intact" in fails and "metadata.json" in fails


def test_hang_is_killed(judge):
    fails, out = judge(lambda d: Spec(["hangs"], timeout=2))
    assert "hung" in fails and out.seconds < 10


def test_memory_over_2gib_is_reported(judge):
    if os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") < (6 << 30):
        pytest.skip("needs 6 GiB of RAM to allocate 2.1 GiB safely")
    fails, out = judge(lambda d: Spec(["big", str(2200)]))
    assert "peaked at" in fails and out.maxrss_kib > 2 << 20


def test_unhandled_signal_is_reported(judge):
    """SIGTERM kills the fake outright: wrong exit, and its temporary directory stays behind."""
    fails, out = judge(lambda d: Spec(["compile", "compile-slowly", "-o", "out"], signal=signal.SIGTERM, timeout=20))
    assert out.signal_sent == signal.SIGTERM and out.returncode == -signal.SIGTERM
    assert "expected 143" in fails and "created: '.out.tmp-" in fails


@pytest.mark.parametrize("header, caught", [
    ('#define EDGEC_MODEL_NUM_INPUTS 1\n#define X "a"\n', None),
    ('#define EDGEC_MODEL_NUM_INPUTS 1\n/* x */ int edgec_pwned; /* */\n', "does not compile"),
    ('#define EDGEC_MODEL_NUM_INPUTS 1\n#define EDGEC_PWNED 1\n', "does not compile"),
    ('#define EDGEC_MODEL_NUM_INPUTS 1\n#define X "x??/"\n', "does not compile"),
    ('#define EDGEC_MODEL_NUM_INPUTS 1\n#define X "x\n', "does not compile"),
])
def test_check_header_catches_injection(tmp_path, header, caught):
    cd = CaseDir(FakeSession(tmp_path / "s"), tmp_path / "c")
    (cd.work / "out").mkdir()
    (cd.work / "out" / "model.h").write_text(header)
    if caught is None:
        cd.check_header("out")
    else:
        with pytest.raises(CaseFailure, match=caught):
            cd.check_header("out")


def test_check_report_catches_script(tmp_path):
    cd = CaseDir(FakeSession(tmp_path / "s"), tmp_path / "c")
    (cd.work / "r.html").write_text("<html><td>&lt;/script&gt;</td><td></ScRiPt ><SCRIPT>x</td></html>")
    with pytest.raises(CaseFailure, match="unescaped <script"):
        cd.check_report("r.html")

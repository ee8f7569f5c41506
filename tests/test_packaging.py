"""pyproject lists its packages explicitly (package-dir maps passes/ and targets/ into edgec);
every source package must be listed or wheels silently lose it."""

from __future__ import annotations

import tomllib

from tests.conftest import ROOT

ROOTS = {"edgec": "edgec", "passes": "edgec.passes", "targets": "edgec.targets"}


def test_every_package_is_listed_in_pyproject():
    conf = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(conf["packages"])
    found = set()
    for folder, name in ROOTS.items():
        for init in (ROOT / folder).rglob("__init__.py"):
            rel = init.parent.relative_to(ROOT / folder).parts
            found.add(".".join((name, *rel)))
    assert found == listed, f"missing: {sorted(found - listed)}, stale: {sorted(listed - found)}"
    assert conf["package-dir"] == {"edgec": "edgec", "edgec.passes": "passes", "edgec.targets": "targets"}

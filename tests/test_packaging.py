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


def test_cmake_package_is_package_data():
    """edgec/cmake/ (find_package(edgec), `edgec --cmake-dir`) holds no Python: wheels carry it only
    through package-data."""
    from fnmatch import fnmatch

    globs = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["edgec"]
    files = [p.relative_to(ROOT / "edgec").as_posix() for p in (ROOT / "edgec" / "cmake").iterdir()]
    assert "cmake/edgecConfig.cmake" in files and "cmake/edgecConfigVersion.cmake" in files
    assert all(any(fnmatch(f, g) for g in globs) for f in files), (files, globs)

"""Optional dependencies go through one table (lakekit/_deps.py) whose extras all exist."""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

import pytest
import tomllib

from lakekit import _deps
from lakekit.errors import MissingDependencyError

ROOT = Path(__file__).resolve().parents[1]
EXTRAS = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
             ["optional-dependencies"])


def test_every_extra_the_table_names_exists_in_pyproject() -> None:
    named = {entry.extra for entry in _deps.OPTIONAL.values()}
    assert named <= EXTRAS, f"extras missing from pyproject.toml: {sorted(named - EXTRAS)}"
    assert set(_deps.PROTOCOLS.values()) <= set(_deps.OPTIONAL)


def test_every_install_hint_in_the_code_names_an_existing_extra() -> None:
    hinted = set()
    for path in (ROOT / "lakekit").rglob("*.py"):
        text = path.read_text()
        hinted |= {(path.name, m) for m in re.findall(r"lakekit\[([a-z0-9_-]+)\]", text)}
    missing = {(f, e) for f, e in hinted if e not in EXTRAS}
    assert not missing, f"install hints naming extras that do not exist: {sorted(missing)}"


def test_only_the_deps_module_catches_import_errors() -> None:
    allowed = {"lakekit/_deps.py": "the one place",
               "lakekit/storage.py": "fsspec reports a known protocol "
               "without an installed implementation as ImportError"}
    offenders = []
    for path in (ROOT / "lakekit").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ExceptHandler) and node.type is not None:
                names = {n.id for n in ast.walk(node.type) if isinstance(n, ast.Name)}
                where = path.relative_to(ROOT).as_posix()
                if names & {"ImportError", "ModuleNotFoundError"} and where not in allowed:
                    offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert not offenders, f"optional imports outside lakekit/_deps.py: {offenders}"


def test_a_missing_optional_package_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "kafka", None)  # what Python does for a blocked import
    with pytest.raises(MissingDependencyError) as info:
        _deps.import_optional("kafka", purpose="the Kafka sink")
    assert str(info.value) == ("kafka-python is required for the Kafka sink; install it with: "
                               "pip install 'lakekit[kafka]'")
    assert isinstance(info.value, ImportError)


def test_a_missing_filesystem_names_its_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    import lakekit as lk

    monkeypatch.setitem(sys.modules, "gcsfs", None)
    with pytest.raises(MissingDependencyError, match=r"pip install 'lakekit\[gcs\]'"):
        lk.dataset("gs://bucket/events/")


def test_a_broken_installed_package_is_not_reported_as_missing(tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch
                                                               ) -> None:
    (tmp_path / "lakekit_broken_pkg.py").write_text("import lakekit_not_there_either\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ModuleNotFoundError) as info:
        _deps.import_optional("lakekit_broken_pkg")
    assert not isinstance(info.value, MissingDependencyError)
    assert info.value.name == "lakekit_not_there_either"


def test_an_optional_package_missing_a_dependency_of_its_own_names_the_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # like moto installed without its [server] parts: moto.server fails on flask
    pkg = tmp_path / "lakekit_fakeopt"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "server.py").write_text("import lakekit_fakeopt_flask\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setitem(_deps.OPTIONAL, "lakekit_fakeopt", _deps.Optional("fakeopt[server]",
                                                                          "demo"))
    with pytest.raises(MissingDependencyError) as info:
        _deps.import_optional("lakekit_fakeopt.server", purpose="the local S3 server")
    assert str(info.value) == (
        "fakeopt[server] is required for the local S3 server (fakeopt[server] is installed but "
        "its dependency lakekit_fakeopt_flask is not); install it with: "
        "pip install 'lakekit[demo]'")


def test_a_prefix_of_the_module_name_is_not_taken_for_the_module(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # "lakekit_pfx" is a prefix of "lakekit_pfxmod" but not a parent package of it
    (tmp_path / "lakekit_pfxmod.py").write_text("import lakekit_pfx\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ModuleNotFoundError) as info:
        _deps.import_optional("lakekit_pfxmod")
    assert not isinstance(info.value, MissingDependencyError)

"""The fast subset's split stays true: every module and test that tests/conftest.py names as end to end exists, so a
renamed one cannot drop back into `pytest -m "not e2e"` unnoticed. Read from the sources, so it holds whatever subset
of the suite is collected."""

from __future__ import annotations

import ast

from tests.conftest import E2E_MODULES, E2E_TESTS, ROOT


def _tests_in(module: str) -> set[str]:
    tree = ast.parse((ROOT / "tests" / f"{module}.py").read_text(encoding="utf-8"))
    return {n.name for n in tree.body if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef) and n.name.startswith("test")}


def test_every_end_to_end_module_exists() -> None:
    missing = sorted(m for m in E2E_MODULES if not (ROOT / "tests" / f"{m}.py").is_file())
    assert not missing, f"tests/conftest.py E2E_MODULES names modules that do not exist: {missing}"


def test_every_end_to_end_test_exists() -> None:
    missing = []
    for entry in sorted(E2E_TESTS):
        module, name = entry.split("::")
        if not (ROOT / "tests" / f"{module}.py").is_file() or name not in _tests_in(module):
            missing.append(entry)
    assert not missing, f"tests/conftest.py E2E_TESTS names tests that do not exist: {missing}"

"""Dependencies point one way, and no module imports itself back.

The rule (the kernel imports no app; accounts imports no other app; apps and
the kernel import none of the wiring; no import cycles) is written as
import-linter contracts in .importlinter. This test runs ``lint-imports`` so
that ``make test`` and CI fail on a wrong arrow, with import-linter's own
report (which import, on which line) as the failure message.
"""

from __future__ import annotations

import configparser
import subprocess
import sys
from pathlib import Path

import grimp
import pytest
from django.apps import apps

from tests.import_contracts import AcyclicModulesContract

BASE_DIR = Path(__file__).resolve().parents[2]
CONFIG = BASE_DIR / ".importlinter"


def _config() -> configparser.ConfigParser:
    parser = configparser.ConfigParser()
    parser.read(CONFIG)
    return parser


def _listed(value: str) -> set[str]:
    return {line.strip() for line in value.splitlines() if line.strip()}


def test_import_contracts_are_kept():
    lint_imports = Path(sys.executable).with_name("lint-imports")
    assert lint_imports.exists(), "import-linter is missing: pip install -r requirements-dev.txt"
    result = subprocess.run(
        [str(lint_imports), "--no-cache", str(CONFIG)],
        cwd=BASE_DIR, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, "A dependency points the wrong way:\n" + result.stdout + result.stderr
    assert "0 broken" in result.stdout


# The wiring: what composes the apps (and may import them). Everything else in jagcall/ is the
# kernel and lives in jagcall/kernel/, where "the kernel imports no app" holds.
WIRING = {"__init__.py", "settings", "settings_test.py", "urls.py", "routing.py", "asgi.py", "wsgi.py", "celery.py", "devserver.py"}


def test_jagcall_holds_only_the_wiring_and_the_kernel():
    """A new kernel piece (provider clients, the webhook base, stand-ins) goes under jagcall/kernel/, where the
    contract that it imports no app covers it; a module added beside the wiring would escape that contract."""
    root = Path(__file__).resolve().parents[1]
    entries = {p.name for p in root.iterdir() if p.name not in ("__pycache__",) and (p.suffix == ".py" or p.is_dir())}
    unexpected = sorted(entries - WIRING - {"kernel", "tests"})
    assert not unexpected, f"jagcall/ is the wiring and the kernel: move {unexpected} into jagcall/kernel/ (or, if it composes the apps, list it in WIRING and in .importlinter's wiring contract)"


def test_every_app_of_ours_is_under_the_contracts():
    """A new app cannot slip past the kernel and accounts rules by not being listed."""
    top_level = {config.name.split(".")[0] for config in apps.get_app_configs()}
    # Ours: a package in the repository itself (not the virtualenv), other than the wiring/kernel and test apps.
    ours = {name for name in top_level if (BASE_DIR / name / "__init__.py").exists()} - {"jagcall", "tests"}
    assert {"accounts", "compliance"} <= ours
    config = _config()
    assert ours <= _listed(config["importlinter"]["root_packages"])
    assert ours <= _listed(config["importlinter:contract:kernel-imports-no-app"]["forbidden_modules"])
    assert ours - {"accounts"} <= _listed(
        config["importlinter:contract:accounts-imports-no-other-app"]["forbidden_modules"]
    )
    assert ours <= _listed(config["importlinter:contract:no-import-cycles"]["containers"])


# --- the cycle contract itself ----------------------------------------------------------


def _graph(*imports: tuple[str, str]) -> grimp.ImportGraph:
    graph = grimp.ImportGraph()
    graph.add_module("app")
    for line, (importer, imported) in enumerate(imports, start=1):
        graph.add_import(importer=importer, imported=imported, line_number=line, line_contents=f"import {imported}")
    return graph


def _contract(**options) -> AcyclicModulesContract:
    return AcyclicModulesContract(
        name="cycles", session_options={"root_packages": ["app"]}, contract_options={"containers": ["app"], **options}
    )


def test_a_cycle_through_three_modules_is_found_with_its_lines():
    graph = _graph(("app.a", "app.b"), ("app.b", "app.c"), ("app.c", "app.a"), ("app.c", "app.d"))
    check = _contract().check(graph, verbose=False)
    assert not check.kept
    [cycle] = check.metadata["cycles"]
    assert cycle["modules"] == ["app.a", "app.b", "app.c"]
    assert ("app.c", "app.a", [3]) in cycle["imports"]
    assert all(imported != "app.d" for _importer, imported, _lines in cycle["imports"])


def test_modules_that_import_one_way_keep_the_contract():
    graph = _graph(("app.a", "app.b"), ("app.b", "app.c"), ("app.a", "app.c"))
    assert _contract().check(graph, verbose=False).kept


def test_tests_packages_and_ignored_imports_are_left_out():
    through_tests = [("app.a", "app.tests.factories"), ("app.tests.factories", "app.a")]
    assert not _contract().check(_graph(*through_tests), verbose=False).kept
    assert _contract(skip_packages_named=["tests"]).check(_graph(*through_tests), verbose=False).kept

    loop = [("app.b", "app.c"), ("app.c", "app.b")]
    assert not _contract().check(_graph(*loop), verbose=False).kept
    assert _contract(ignore_imports=["app.c -> app.b"]).check(_graph(*loop), verbose=False).kept


def test_an_unknown_container_is_a_clear_error():
    with pytest.raises(ValueError, match="no module named 'app.nothing'"):
        _contract(containers=["app.nothing"]).check(_graph(("app.a", "app.b")), verbose=False)

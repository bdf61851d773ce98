"""Flower and Opacus internals are used in one module, which refuses versions it was not checked against."""

import ast
from pathlib import Path

import pytest

from infra.compat import IncompatibleVersionError, check_versions

ROOT = Path(__file__).resolve().parents[2]
RUNTIME = ("client_site", "privacy", "aggregator", "federation", "dashboard", "infra")
# Public APIs (with their subpackages): Flower's Message API, its legacy API (SecAgg+) and
# simulation entry point; Opacus' documented packages.
PUBLIC = ("flwr.app", "flwr.clientapp", "flwr.serverapp", "flwr.client", "flwr.server", "flwr.common",
          "flwr.simulation", "opacus.accountants", "opacus.data_loader", "opacus.grad_sample",
          "opacus.optimizers", "opacus.validators")


def _public(module):
    return module == "opacus" or any(module == p or module.startswith(p + ".") for p in PUBLIC)


def _imports(path):
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module:
            yield node.module
        elif isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)


def test_a_version_other_than_the_pinned_one_is_refused_with_the_fix():
    with pytest.raises(IncompatibleVersionError, match=r"needs flwr==9\.9\.9 .* but flwr is 1\.41\.0"):
        check_versions({"flwr": "9.9.9"})
    with pytest.raises(IncompatibleVersionError, match="no-such-package is not installed"):
        check_versions({"no-such-package": "1.0"})


def test_only_the_compat_module_imports_flower_or_opacus_internals():
    offenders = []
    for package in RUNTIME:
        for path in sorted((ROOT / package).rglob("*.py")):
            if path == ROOT / "infra" / "compat.py":
                continue
            for module in _imports(path):
                if module.split(".")[0] in ("flwr", "opacus") and not _public(module):
                    offenders.append(f"{path.relative_to(ROOT)}: {module}")
    assert offenders == []

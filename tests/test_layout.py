"""The layout's rules that no linter checks: every public module says what it exports, no
private name crosses a module, and the paths that moved still import, for one release."""

from __future__ import annotations

import ast
import importlib
import pkgutil
import sys
import warnings
from pathlib import Path

import pytest

import auditwire
from auditwire._moved import MOVED

SOURCE = Path(auditwire.__file__).parent


def _modules() -> list[str]:
    names = ["auditwire"]
    for info in pkgutil.walk_packages(auditwire.__path__, "auditwire."):
        if info.name not in MOVED:
            names.append(info.name)
    return sorted(names)


PUBLIC = [name for name in _modules() if not any(p.startswith("_") for p in name.split("."))]


@pytest.mark.parametrize("name", PUBLIC)
def test_every_public_module_declares_what_it_exports(name: str) -> None:
    module = importlib.import_module(name)
    exported = getattr(module, "__all__", None)
    assert isinstance(exported, list), f"{name} has no __all__"
    missing = [item for item in exported if not hasattr(module, item)]
    assert not missing, f"{name}.__all__ names what it lacks: {missing}"


def test_no_private_name_is_imported_across_modules() -> None:
    crossings = []
    for path in sorted(SOURCE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("auditwire"):
                crossings += [
                    f"{path.relative_to(SOURCE)}: {node.module}.{alias.name}"
                    for alias in node.names
                    if alias.name.startswith("_") and not alias.name.startswith("__")
                ]
    assert crossings == []


@pytest.mark.parametrize(("old", "new"), sorted(MOVED.items()))
def test_moved_paths_still_import_for_one_release(old: str, new: str) -> None:
    sys.modules.pop(old, None)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        shim = importlib.import_module(old)
    assert [str(w.message) for w in caught if w.category is DeprecationWarning] == [
        f"{old} moved to {new}; the old path goes away in auditwire 0.3"
    ]
    home = importlib.import_module(new)
    assert shim.__all__ == home.__all__
    for name in home.__all__:
        assert getattr(shim, name) is getattr(home, name)

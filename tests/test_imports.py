"""The package layout's import rules: `trainer` → `hub_cards` → `modeling_ctrilora`, never back.

`modeling_ctrilora` is what a user of a checkpoint installs and imports; it must not pull in the training or Hub
code. The AST walk reads every import, at module level and inside functions, so a lazy import counts too.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("modeling_ctrilora", "trainer", "hub_cards")
# Package → the packages it may import. Anything else, or a cycle, is a layout error.
ALLOWED = {
    "modeling_ctrilora": set(),
    "hub_cards": {"modeling_ctrilora"},
    "trainer": {"modeling_ctrilora", "hub_cards"},
}


def _modules() -> dict[str, Path]:
    """Dotted name → file of every module of the three packages."""
    modules = {}
    for package in PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            parts = path.relative_to(REPO).with_suffix("").parts
            modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return modules


def _imported(name: str, path: Path) -> set[str]:
    """Absolute names of everything `path` (module `name`) imports, anywhere in the file."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module
            found.add(module)
            found.update(f"{module}.{alias.name}" for alias in node.names)
    return found


def _package_edges() -> dict[str, set[str]]:
    edges: dict[str, set[str]] = {package: set() for package in PACKAGES}
    for name, path in _modules().items():
        source = name.split(".")[0]
        for target in _imported(name, path):
            top = target.split(".")[0]
            if top in PACKAGES and top != source:
                edges[source].add(top)
    return edges


def test_importing_modeling_ctrilora_loads_neither_trainer_nor_hub_cards():
    submodules = [name for name in _modules() if name.startswith("modeling_ctrilora.")]
    code = (
        "import importlib, json, sys\n"
        f"for name in {submodules!r}: importlib.import_module(name)\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in ('trainer', 'hub_cards'))))"
    )
    completed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True)
    assert json.loads(completed.stdout.strip().splitlines()[-1]) == []


def test_package_imports_run_one_way():
    edges = _package_edges()
    for package, targets in edges.items():
        assert targets <= ALLOWED[package], f"{package} imports {sorted(targets - ALLOWED[package])}"
    # No cycle: repeatedly drop packages that import nothing left.
    remaining = dict(edges)
    while remaining:
        leaves = [package for package, targets in remaining.items() if not targets & remaining.keys()]
        assert leaves, f"import cycle among {sorted(remaining)}"
        for package in leaves:
            del remaining[package]


def test_the_walk_sees_relative_and_function_level_imports(tmp_path):
    module = tmp_path / "pkg" / "sub" / "mod.py"
    module.parent.mkdir(parents=True)
    module.write_text("from ..other import thing\n\ndef f():\n    from trainer.run import prepare_data\n")
    assert _imported("pkg.sub.mod", module) >= {"pkg.other", "pkg.other.thing", "trainer.run.prepare_data"}


def test_no_module_shadows_the_standard_library():
    shadowing = [
        str(path.relative_to(REPO)) for path in _modules().values() if path.stem in sys.stdlib_module_names
    ]
    assert shadowing == []

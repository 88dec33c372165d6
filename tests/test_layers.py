"""The layers of DESIGN.md §1, enforced on the imports.

- `trunkline.otp` knows nothing of the rest of trunkline.
- Everything else uses the runtime through its public API only: `trunkline.otp` and its public
  modules, and no name that starts with an underscore.
"""

import ast
from pathlib import Path

import trunkline

ROOT = Path(trunkline.__file__).parent


def _imports(path: Path) -> list[tuple[str, list[str]]]:
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.module, [alias.name for alias in node.names]))
        elif isinstance(node, ast.Import):
            found.extend((alias.name, []) for alias in node.names)
    return found


def test_the_runtime_depends_on_nothing_else_in_trunkline() -> None:
    offenders = [
        f"{path.relative_to(ROOT)}: {module}"
        for path in (ROOT / "otp").rglob("*.py")
        for module, _ in _imports(path)
        if module.startswith("trunkline.") and not module.startswith("trunkline.otp")
    ]
    assert offenders == []


def test_services_use_only_the_public_runtime_api() -> None:
    offenders = []
    for path in ROOT.rglob("*.py"):
        if (ROOT / "otp") in path.parents:
            continue
        for module, names in _imports(path):
            if not module.startswith("trunkline.otp"):
                continue
            parts = module.split(".")
            private = [p for p in parts if p.startswith("_")]
            private += [n for n in names if n.startswith("_")]
            if private:
                offenders.append(f"{path.relative_to(ROOT)}: {module} {names}")
    assert offenders == []

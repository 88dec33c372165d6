"""trunkline.db's public surface: complete, sorted, and layered on otp's public API."""

import ast
import pkgutil
from pathlib import Path

import trunkline.db as db
import trunkline.otp as otp


def test_all_is_sorted_and_every_name_exists() -> None:
    assert db.__all__ == sorted(db.__all__, key=lambda n: (not n.isupper(), n))
    for name in db.__all__:
        assert hasattr(db, name), name


# Public in their modules, for those who write a driver or test one, but not re-exported.
FOR_IMPLEMENTERS = {
    "driver.Driver",
    "driver.Runner",
    "driver.Session",
    "notifications.Hub",
    "notifications.MAX_PENDING",
    "notifications.check_channel",
    "migration.migrate",
    "query.POSTGRESQL",
    "query.SQLITE",
    "query.STATEMENTS",
    "query.Statement",
    "query.statement_for",
    "url.mask_password",
}


def test_every_public_name_of_every_public_module_is_exported() -> None:
    missing = []
    for module in pkgutil.iter_modules(db.__path__):
        if module.ispkg or module.name.startswith("_"):
            continue
        mod = __import__(f"trunkline.db.{module.name}", fromlist=["__all__"])
        for name in getattr(mod, "__all__", []):
            qualified = f"{module.name}.{name}"
            if not hasattr(db, name) and qualified not in FOR_IMPLEMENTERS:
                missing.append(qualified)
    assert missing == []


def test_the_database_layer_uses_only_the_runtimes_public_api() -> None:
    public = {*otp.__all__, "telemetry"}
    offenders = []
    for path in Path(db.__file__).parent.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if not (isinstance(node, ast.ImportFrom) and node.module and node.level == 0):
                continue
            if node.module.startswith("trunkline.") and not node.module.startswith("trunkline.db"):
                if node.module != "trunkline.otp":
                    offenders.append(f"{path.name}: from {node.module} import ...")
                offenders += [
                    f"{path.name}: {alias.name}" for alias in node.names if alias.name not in public
                ]
    assert offenders == []

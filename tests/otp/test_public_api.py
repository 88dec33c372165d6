"""The package's public surface: complete and sorted (layering: tests/test_layers.py)."""

import pkgutil

import trunkline.otp as otp


def test_all_is_sorted_and_every_name_exists() -> None:
    assert otp.__all__ == sorted(otp.__all__, key=lambda n: (not n.isupper(), n))
    for name in otp.__all__:
        assert hasattr(otp, name), name


# Names public in their module, for those who implement a behaviour, but not re-exported.
FOR_IMPLEMENTERS = {"reporter.group_by_event"}


def test_every_public_name_of_every_public_module_is_exported() -> None:
    missing = []
    for module in pkgutil.iter_modules(otp.__path__):
        if (
            module.ispkg
            or module.name.startswith("_")
            or module.name in ("testing", "pytest_plugin")
        ):
            continue
        mod = __import__(f"trunkline.otp.{module.name}", fromlist=["__all__"])
        for name in getattr(mod, "__all__", []):
            if module.name in ("telemetry", "metrics", "stage"):
                continue  # namespaces: otp.telemetry.execute, otp.stage.subscribe
            qualified = f"{module.name}.{name}"
            if not hasattr(otp, name) and qualified not in FOR_IMPLEMENTERS:
                missing.append(qualified)
    assert missing == []

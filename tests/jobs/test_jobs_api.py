"""The package's public surface: complete and sorted."""

import pkgutil

import trunkline.jobs as jobs

# Modules whose names are the machinery of the running queue, public for whoever reads or
# extends it, not re-exported.
MACHINERY = {
    "acks",
    "engine",
    "execution",
    "executor",
    "heartbeat",
    "lifeline",
    "notifier",
    "producer",
    "pruner",
    "queue",
    "queue_metrics",
    "queue_supervisor",
    "stager",
    "watchman",
}
# Names public in their module but not re-exported, each for a reason.
NOT_EXPORTED = {
    "jobs.JobsSupervisor",  # reached through Jobs.child_spec / start_link
    "new_job.check_name",  # validation helpers
    "new_job.encode_json",
    "new_job.MAX_ATTEMPTS",
    "new_job.MAX_DELAY_S",
    "worker.check_options",
    "unique.DEFAULT_UNIQUE_STATES",
    "unique.Field",
    "job.COLUMNS",
}


def test_all_is_sorted_and_every_name_exists() -> None:
    assert jobs.__all__ == sorted(jobs.__all__, key=lambda n: (not n.isupper(), n))
    for name in jobs.__all__:
        assert hasattr(jobs, name), name


def test_every_public_name_of_every_user_module_is_exported() -> None:
    missing = []
    for module in pkgutil.iter_modules(jobs.__path__):
        if module.ispkg or module.name in MACHINERY or module.name in ("testing", "backoff"):
            continue
        mod = __import__(f"trunkline.jobs.{module.name}", fromlist=["__all__"])
        for name in getattr(mod, "__all__", []):
            qualified = f"{module.name}.{name}"
            if not hasattr(jobs, name) and qualified not in NOT_EXPORTED:
                missing.append(qualified)
    assert missing == []

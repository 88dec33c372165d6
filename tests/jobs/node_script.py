"""A job queue node in a process of its own, for test_sigkill.py.

Usage: ``python node_script.py DATABASE_URL NODE_NAME``. It runs the ``"default"`` queue
(10 at once) with one worker, ``sigkill.slow``, which takes ``args["seconds"]`` seconds,
beating every 0.2 s, taking nodes silent for 1 s for lost. It prints ``ready`` once its
tree runs, and stops by itself after two minutes at most.
"""

from __future__ import annotations

import asyncio
import sys

from trunkline import db, jobs, otp

LIFETIME_S = 120.0

registry = jobs.WorkerRegistry()


@registry.worker(name="sigkill.slow")
async def slow(job: jobs.Job) -> None:
    await asyncio.sleep(job.args["seconds"])


async def main(url: str, node_name: str) -> None:
    database = await db.connect(url)
    try:
        node = jobs.Jobs(
            database,
            registry=registry,
            queues={"default": 10},
            node=node_name,
            heartbeat_interval_s=0.2,
            rescue_after_s=1.0,
            poll_interval_s=0.2,
            stage_interval_s=0.2,
            shutdown_grace_s=0.5,
        )
        supervisor = await node.start()
        print("ready", flush=True)
        try:
            await asyncio.sleep(LIFETIME_S)
        finally:
            await otp.stop(supervisor, "shutdown")
    finally:
        await database.close()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))

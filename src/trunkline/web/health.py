"""``GET /healthz``: whether this node can serve, for load balancers and orchestrators.

200 with ``{"status": "ok", "database": "ok", "jobs": "ok"}`` when every check passes; 503 with
the same shape, the failing checks marked ``"failing"`` and why in ``errors``, when one does
not. The database check is a ``SELECT 1`` that must answer within :data:`CHECK_TIMEOUT_S`; the
jobs check, on a node running the job queue, that its supervisor is alive.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Literal

from aiohttp import web
from pydantic import BaseModel, Field

from trunkline import otp

from .openapi import Api, Respond

if TYPE_CHECKING:
    from trunkline.server.context import NodeContext

__all__ = ["CHECK_TIMEOUT_S", "Health", "add_health_route"]

CHECK_TIMEOUT_S = 2.0

Check = Literal["ok", "failing"]


class Health(BaseModel):
    """The answer of ``GET /healthz``."""

    status: Check = Field(description="ok when every check is")
    database: Check = Field(description="the database answers SELECT 1")
    jobs: Check | None = Field(
        default=None, description="the job queue's tree is running (absent without one)"
    )
    errors: dict[str, str] = Field(
        default_factory=dict, description="why each failing check failed"
    )


def add_health_route(api: Api, context: NodeContext) -> None:
    """Declare ``GET /healthz`` on ``api``, checking ``context``'s resources."""

    @api.route(
        "GET",
        "/healthz",
        summary="Whether this node can serve",
        tags=["operations"],
        response=Health,
        responses={503: Health},
    )
    async def healthz(request: web.Request) -> Health | Respond:
        errors: dict[str, str] = {}
        database_ok = await _check_database(context, errors)
        jobs_ok: bool | None = None
        if context.jobs is not None:
            supervisor = otp.resolve(otp.Via(context.jobs.names, "supervisor"))
            jobs_ok = supervisor is not None and otp.is_alive(supervisor)
            if not jobs_ok:
                errors["jobs"] = "the job queue is not running"
        health = Health(
            status="ok" if not errors else "failing",
            database="ok" if database_ok else "failing",
            jobs=None if jobs_ok is None else ("ok" if jobs_ok else "failing"),
            errors=errors,
        )
        return health if not errors else Respond(503, health)


async def _check_database(context: NodeContext, errors: dict[str, str]) -> bool:
    database = context.database
    if database is None:
        errors["database"] = "not started"
        return False
    try:
        async with asyncio.timeout(CHECK_TIMEOUT_S):
            await database.fetch_val("SELECT 1")
    except TimeoutError:
        errors["database"] = f"no answer to SELECT 1 within {CHECK_TIMEOUT_S} s"
        return False
    except Exception as error:
        errors["database"] = f"{type(error).__name__}: {error}"
        return False
    return True

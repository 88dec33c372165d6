"""Query parameters declared with a model: documented in /openapi.json and validated before
the handler runs, on the Api layer and on every chat route that reads a query string."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from chat_api_helpers import ChatClient, chat_node
from pydantic import BaseModel, Field
from web_helpers import client_of

from trunkline import chat
from trunkline.chat.rooms import MAX_LIST_LIMIT
from trunkline.otp import MockClock
from trunkline.server import NodeContext, Settings
from trunkline.web import API, Api, make_app
from trunkline.web.chat_api import add_chat_api


class Page(BaseModel):
    after: int = Field(default=0, ge=0, description="the last id of the previous page")
    limit: int = Field(default=10, ge=1, le=100)
    tag: str | None = Field(default=None, description="only notes with this tag")


class Find(BaseModel):
    text: str = Field(min_length=1, description="what to look for")


class Stars(BaseModel):
    stars: int = Field(ge=0)


class Found(BaseModel):
    text: str
    stars: int


def notes_api(calls: list[Any]) -> Api:
    """Routes with a query model: one that is a response too, one that is only a query, and
    one with a body as well. Each call that reaches a handler is recorded in ``calls``."""
    api = Api(title="notes", version="1.0.0")

    @api.route("GET", "/notes", summary="A page of notes", query=Page, response=Page)
    async def list_notes(request: web.Request, *, query: Page) -> Page:
        calls.append(query)
        return query

    @api.route("GET", "/find", summary="Find notes", query=Find, response=Found)
    async def find(request: web.Request, *, query: Find) -> Found:
        calls.append(query)
        return Found(text=query.text, stars=0)

    @api.route(
        "PUT",
        "/notes/{id}/stars",
        summary="Star a note",
        query=Find,
        request=Stars,
        response=Found,
    )
    async def star(request: web.Request, body: Stars, *, query: Find) -> Found:
        calls.append((body, query))
        return Found(text=query.text, stars=body.stars)

    return api


def app_of(api: Api) -> web.Application:
    from trunkline.web.errors import error_middleware

    app = web.Application(middlewares=[error_middleware])
    api.add_routes(app)
    return app


def parameters_of(operation: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """An operation's query parameters, by name."""
    return {p["name"]: p for p in operation.get("parameters", []) if p["in"] == "query"}


# -- the Api layer -------------------------------------------------------------------------------


@pytest.mark.real_clock
async def test_the_document_lists_each_query_parameter() -> None:
    async with client_of(app_of(notes_api([]))) as client:
        document = await (await client.get("/openapi.json")).json()
    notes = document["paths"]["/notes"]["get"]
    assert parameters_of(notes) == {
        "after": {
            "name": "after",
            "in": "query",
            "required": False,
            "schema": {"type": "integer", "minimum": 0, "default": 0},
            "description": "the last id of the previous page",
        },
        "limit": {
            "name": "limit",
            "in": "query",
            "required": False,
            "schema": {"type": "integer", "minimum": 1, "maximum": 100, "default": 10},
        },
        # Optional, and of type string only: a query string cannot say null.
        "tag": {
            "name": "tag",
            "in": "query",
            "required": False,
            "schema": {"type": "string"},
            "description": "only notes with this tag",
        },
    }
    assert "400" in notes["responses"]
    find = document["paths"]["/find"]["get"]
    assert find["parameters"] == [
        {
            "name": "text",
            "in": "query",
            "required": True,
            "schema": {"type": "string", "minLength": 1},
            "description": "what to look for",
        }
    ]
    star = document["paths"]["/notes/{id}/stars"]["put"]
    assert [(p["name"], p["in"], p["required"]) for p in star["parameters"]] == [
        ("id", "path", True),
        ("text", "query", True),
    ]
    assert star["requestBody"]["required"] is True
    # A model that is only a query is parameters, not a schema; one that is an answer too
    # stays.
    schemas = document["components"]["schemas"]
    assert "Find" not in schemas
    assert {"Page", "Stars", "Found"} <= set(schemas)


@pytest.mark.real_clock
async def test_the_handler_gets_the_query_parsed() -> None:
    calls: list[Any] = []
    async with client_of(app_of(notes_api(calls))) as client:
        response = await client.get("/notes", params={"after": "7", "tag": "x", "other": "1"})
        assert response.status == 200
        assert await response.json() == {"after": 7, "limit": 10, "tag": "x"}
        defaults = await (await client.get("/notes")).json()
        assert defaults == {"after": 0, "limit": 10, "tag": None}
        starred = await client.put("/notes/1/stars", params={"text": "hi"}, json={"stars": 3})
        assert await starred.json() == {"text": "hi", "stars": 3}
    assert calls[-1] == (Stars(stars=3), Find(text="hi"))


@pytest.mark.real_clock
@pytest.mark.parametrize(
    ("query", "loc", "kind", "message"),
    [
        ("limit=abc", "limit", "int_parsing", "limit: Input should be a valid integer"),
        ("limit=-1", "limit", "greater_than_equal", "limit: Input should be greater than"),
        ("limit=0", "limit", "greater_than_equal", "limit: Input should be greater than"),
        ("limit=101", "limit", "less_than_equal", "limit: Input should be less than"),
        ("after=1.5", "after", "int_parsing", "after: Input should be a valid integer"),
        ("limit=5&limit=6", "limit", "repeated", "limit is given more than once"),
    ],
)
async def test_a_bad_query_value_is_a_400_and_the_handler_does_not_run(
    query: str, loc: str, kind: str, message: str
) -> None:
    calls: list[Any] = []
    async with client_of(app_of(notes_api(calls))) as client:
        response = await client.get(f"/notes?{query}")
        assert response.status == 400
        error = (await response.json())["error"]
    assert error["code"] == "invalid_request"
    assert error["message"].startswith(f"query parameter {message}")
    assert error["details"] == [
        {"loc": [loc], "message": error["details"][0]["message"], "type": kind}
    ]
    assert calls == []


@pytest.mark.real_clock
async def test_a_missing_parameter_and_several_failures_are_named() -> None:
    calls: list[Any] = []
    async with client_of(app_of(notes_api(calls))) as client:
        missing = (await (await client.get("/find")).json())["error"]
        assert missing["message"] == "query parameter text is required"
        assert missing["details"] == [
            {"loc": ["text"], "message": "Field required", "type": "missing"}
        ]
        several = (await (await client.get("/notes?after=x&limit=0")).json())["error"]
        assert several["message"].endswith("(and 1 more: see details)")
        assert [d["loc"] for d in several["details"]] == [["after"], ["limit"]]
        # The query is read before the body: a bad query stars nothing, whatever the body.
        bad_query = await client.put("/notes/1/stars", json={"stars": 3})
        assert bad_query.status == 400
        assert (await bad_query.json())["error"]["details"][0]["loc"] == ["text"]
        bad_body = await client.put("/notes/1/stars?text=hi", json={"stars": -1})
        assert (await bad_body.json())["error"]["message"] == "the body does not match Stars"
    assert calls == []


# -- the chat API --------------------------------------------------------------------------------

# Every chat route that reads a query string: its parameters, as (type, required, maximum).
QUERY_ROUTES = {
    "/api/v1/rooms/public": {
        "after": ("integer", False, 2**63 - 1),
        "limit": ("integer", False, MAX_LIST_LIMIT),
    },
    "/api/v1/rooms/{room_id}/messages": {
        "before": ("integer", False, 2**63 - 1),
        "after": ("integer", False, 2**63 - 1),
        "limit": ("integer", False, chat.MAX_HISTORY_LIMIT),
    },
    "/api/v1/search": {
        "q": ("string", True, None),
        "room": ("integer", False, 2**63 - 1),
        "limit": ("integer", False, chat.MAX_SEARCH_LIMIT),
    },
}


def test_the_chat_routes_document_their_query_parameters(tmp_path: Path) -> None:
    context = NodeContext(
        Settings.model_validate({"database": f"sqlite:///{tmp_path / 'doc.db'}"}),
        web_hooks=[add_chat_api],
    )
    document = make_app(context)[API].document()
    readers = {
        path
        for path, operations in document["paths"].items()
        for operation in operations.values()
        if parameters_of(operation)
    }
    assert readers == set(QUERY_ROUTES)
    for path, expected in QUERY_ROUTES.items():
        operation = document["paths"][path]["get"]
        found = parameters_of(operation)
        assert {
            name: (p["schema"]["type"], p["required"], p["schema"].get("maximum"))
            for name, p in found.items()
        } == expected, path
        assert all(p["description"] for p in found.values()), path
        assert "400" in operation["responses"], path
    limits = {
        path: parameters_of(document["paths"][path]["get"])["limit"]["schema"]
        for path in QUERY_ROUTES
    }
    assert {path: (s["minimum"], s["default"]) for path, s in limits.items()} == {
        "/api/v1/rooms/public": (1, 50),
        "/api/v1/rooms/{room_id}/messages": (1, 50),
        "/api/v1/search": (1, 20),
    }


@pytest.fixture
def clock() -> MockClock:
    # Time moves only when a test jumps it (see chat_api_helpers).
    return MockClock(autojump=False)


async def bad(api: ChatClient, path: str, token: str, query: str) -> dict[str, Any]:
    return await api.error(400, "GET", f"{path}?{query}", token)


async def test_bad_query_values_of_the_chat_routes_are_invalid_input(
    backend: str, tmp_path: Path, clock: MockClock
) -> None:
    async with chat_node(backend, tmp_path) as (context, api):
        ada = await api.user("ada")
        lobby = await api.ok("POST", "/rooms", ada, json={"name": "lobby"})
        me = await api.ok("GET", "/me", ada)
        database = context.require_database()
        for i in range(1, 4):
            await chat.append(database, lobby["id"], me["user"]["id"], f"fox {i}", f"c{i}")
        messages = f"/rooms/{lobby['id']}/messages"
        cases = [
            ("/rooms/public", "limit=abc", "limit", "wrong_type"),
            ("/rooms/public", "limit=-1", "limit", "wrong_type"),
            ("/rooms/public", "limit=0", "limit", "wrong_type"),
            ("/rooms/public", f"limit={MAX_LIST_LIMIT + 1}", "limit", "too_large"),
            ("/rooms/public", "after=first", "after", "wrong_type"),
            ("/rooms/public", "after=", "after", "wrong_type"),
            (messages, "before=abc", "before", "wrong_type"),
            (messages, "after=-1", "after", "wrong_type"),
            (messages, "before=1.5", "before", "wrong_type"),
            (messages, f"before={2**63}", "before", "too_large"),
            (messages, f"limit={chat.MAX_HISTORY_LIMIT + 1}", "limit", "too_large"),
            (messages, "limit=2&limit=3", "limit", "repeated"),
            ("/search", "", "q", "missing"),
            ("/search", "limit=5", "q", "missing"),
            ("/search", "q=fox&room=lobby", "room", "wrong_type"),
            ("/search", f"q=fox&limit={chat.MAX_SEARCH_LIMIT + 1}", "limit", "too_large"),
            ("/search", "q=fox&limit=many", "limit", "wrong_type"),
        ]
        for path, query, field, reason in cases:
            error = await bad(api, path, ada, query)
            where = f"{path}?{query}"
            assert (error["code"], error["field"], error["reason"]) == (
                "invalid_input",
                field,
                reason,
            ), where
            assert error["retry"] is False, where
            assert f"query parameter {field}" in error["message"], where
            assert error["details"][0]["loc"] == [field], where
        # The clear message of each kind of failure.
        word = await bad(api, "/rooms/public", ada, "limit=many")
        assert word["message"] == (
            f"query parameter limit: should be a whole number from 1 to {MAX_LIST_LIMIT}, "
            "not 'many'"
        )
        cursor = await bad(api, messages, ada, "before=-1")
        assert (
            cursor["message"] == "query parameter before: should be a whole number >= 0, not '-1'"
        )
        large = await bad(api, "/search", ada, "q=fox&limit=1000")
        assert large["message"] == (
            f"query parameter limit: should be at most {chat.MAX_SEARCH_LIMIT}, not '1000'"
        )
        assert (await bad(api, "/search", ada, ""))["message"] == "query parameter q is required"

        # The bounds themselves are fine, and nothing above changed anything.
        most = {"limit": chat.MAX_HISTORY_LIMIT, "after": 0}
        page = await api.ok("GET", messages, ada, params=most)
        assert [m["body"] for m in page["messages"]] == ["fox 1", "fox 2", "fox 3"]
        found = await api.ok("GET", "/search", ada, params={"q": "fox", "limit": 100})
        assert len(found["messages"]) == 3
        rooms = await api.ok("GET", "/rooms/public", ada, params={"limit": MAX_LIST_LIMIT})
        assert [r["id"] for r in rooms["rooms"]] == [lobby["id"]]
        assert (await api.ok("GET", "/unread", ada))["total"] == 0

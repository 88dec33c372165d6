"""The OpenAPI layer: validated JSON routes, JSON errors, the document and the /docs page."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from pydantic import BaseModel, Field
from web_helpers import client_of, node_context

from trunkline.server import NodeContext
from trunkline.web import API, Api, ApiError, Respond, make_app

pytestmark = pytest.mark.real_clock


class NewNote(BaseModel):
    title: str = Field(min_length=1, max_length=20)
    stars: int = Field(default=0, ge=0)


class Note(BaseModel):
    id: int
    title: str
    stars: int


def notes_api(max_body_bytes: int = 1024) -> Api:
    api = Api(title="notes", version="1.2.3", max_body_bytes=max_body_bytes)
    stored: list[Note] = []

    @api.route(
        "POST",
        "/notes",
        summary="Add a note",
        tags=["notes"],
        request=NewNote,
        response=Note,
        status=201,
    )
    async def add_note(request: web.Request, body: NewNote) -> Note:
        note = Note(id=len(stored) + 1, title=body.title, stars=body.stars)
        stored.append(note)
        return note

    @api.route(
        "GET",
        "/notes/{id}",
        summary="One note",
        tags=["notes"],
        response=Note,
        responses={404: Note},
    )
    async def get_note(request: web.Request) -> Note | Respond:
        index = int(request.match_info["id"]) - 1
        if not 0 <= index < len(stored):
            raise ApiError(404, "no_such_note", f"no note {index + 1}")
        return stored[index]

    @api.route("GET", "/boom", summary="Fails", tags=["test"])
    async def boom(request: web.Request) -> None:
        raise RuntimeError("the handler broke")

    return api


def app_of(api: Api) -> web.Application:
    app = web.Application(middlewares=_middlewares())
    api.add_routes(app)
    return app


def _middlewares() -> list[Any]:
    from trunkline.web.app import telemetry_middleware
    from trunkline.web.errors import error_middleware

    return [telemetry_middleware, error_middleware]


async def test_a_valid_request_is_answered_with_the_model() -> None:
    async with client_of(app_of(notes_api())) as client:
        response = await client.post("/notes", json={"title": "hello", "stars": 2})
        assert response.status == 201
        assert await response.json() == {"id": 1, "title": "hello", "stars": 2}
        assert (await (await client.get("/notes/1")).json())["title"] == "hello"
        missing = await client.get("/notes/9")
        assert missing.status == 404
        assert (await missing.json())["error"]["code"] == "no_such_note"


async def test_body_errors() -> None:
    async with client_of(app_of(notes_api(max_body_bytes=64))) as client:
        invalid_json = await client.post(
            "/notes", data=b"{not json", headers={"Content-Type": "application/json"}
        )
        assert invalid_json.status == 400
        error = (await invalid_json.json())["error"]
        assert error["code"] == "invalid_request"
        assert error["message"] == "the body is not valid JSON"

        invalid = await client.post("/notes", json={"title": "", "stars": -1, "extra": 1})
        assert invalid.status == 400
        error = (await invalid.json())["error"]
        assert error["code"] == "invalid_request"
        assert error["message"] == "the body does not match NewNote"
        assert sorted(detail["loc"][0] for detail in error["details"]) == ["stars", "title"]
        assert all({"loc", "message", "type"} <= set(detail) for detail in error["details"])

        wrong_type = await client.post(
            "/notes", data=b'{"title": "x"}', headers={"Content-Type": "text/plain"}
        )
        assert wrong_type.status == 415
        assert (await wrong_type.json())["error"]["code"] == "unsupported_media_type"

        too_large = await client.post("/notes", json={"title": "x" * 100})
        assert too_large.status == 413
        assert (await too_large.json())["error"]["code"] == "payload_too_large"

        async def chunks() -> Any:  # no Content-Length: the limit holds while reading
            for _ in range(10):
                yield b" " * 20

        streamed = await client.post(
            "/notes", data=chunks(), headers={"Content-Type": "application/json"}
        )
        assert streamed.status == 413
        # Nothing was stored by any of them.
        assert (await client.get("/notes/1")).status == 404


async def test_unknown_routes_and_handler_crashes_are_json(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with client_of(app_of(notes_api())) as client:
        missing = await client.get("/nowhere", headers={"X-Request-Id": "req-42"})
        assert missing.status == 404
        assert await missing.json() == {
            "error": {
                "code": "not_found",
                "message": "no route for /nowhere",
                "request_id": "req-42",
            }
        }
        assert missing.headers["X-Request-Id"] == "req-42"

        wrong_method = await client.delete("/notes")
        assert wrong_method.status == 405
        assert (await wrong_method.json())["error"]["code"] == "method_not_allowed"

        crashed = await client.get("/boom")
        assert crashed.status == 500
        error = (await crashed.json())["error"]
        assert error["code"] == "internal_error"
        request_id = error["request_id"]
        assert request_id in error["message"]
        assert crashed.headers["X-Request-Id"] == request_id
        # Logged with its traceback and request id; the server goes on.
        (record,) = [r for r in caplog.records if r.name == "trunkline.web" and r.exc_info]
        assert record.__dict__["request_id"] == request_id
        assert "the handler broke" in caplog.text
        assert (await client.post("/notes", json={"title": "after"})).status == 201


async def test_the_document() -> None:
    api = notes_api()
    async with client_of(app_of(api)) as client:
        response = await client.get("/openapi.json")
        assert response.status == 200
        document = await response.json()
    assert document["openapi"] == "3.1.0"
    assert document["info"] == {"title": "notes", "version": "1.2.3"}
    assert set(document["paths"]) == {"/notes", "/notes/{id}", "/boom"}
    add = document["paths"]["/notes"]["post"]
    assert add["operationId"] == "add_note"
    assert add["summary"] == "Add a note"
    assert add["tags"] == ["notes"]
    assert add["requestBody"]["required"] is True
    assert set(add["responses"]) == {"201", "400", "413", "415", "default"}
    get = document["paths"]["/notes/{id}"]["get"]
    assert get["parameters"] == [
        {"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}
    ]
    schemas = document["components"]["schemas"]
    assert {"NewNote", "Note", "ErrorBody", "ErrorDetail"} <= set(schemas)
    assert schemas["NewNote"]["properties"]["title"]["minLength"] == 1
    # Every reference resolves.
    refs = re.findall(r'"\$ref": "#/components/schemas/([^"]+)"', _dumps(document))
    assert refs
    assert set(refs) <= set(schemas)
    for path in document["paths"].values():
        for operation in path.values():
            for answer in operation["responses"].values():
                assert "description" in answer
                assert set(answer.get("content", {"application/json": 0})) == {"application/json"}


async def test_docs_page_is_served_and_self_contained() -> None:
    async with client_of(app_of(notes_api())) as client:
        response = await client.get("/docs")
        assert response.status == 200
        assert response.content_type == "text/html"
        page = await response.text()
    assert "/openapi.json" in page
    assert "<script>" in page
    assert "<style>" in page
    # Nothing from any other host: no absolute URL, no external script or stylesheet.
    assert not re.search(r"https?://", page)
    assert not re.search(r"<script[^>]+src=|<link[^>]+href=", page)
    assert "default-src 'none'" in response.headers["Content-Security-Policy"]


def test_a_route_is_declared_once() -> None:
    api = notes_api()
    with pytest.raises(ValueError, match="declared twice"):
        api.route("POST", "/notes", summary="again")


async def test_components_add_routes_through_web_hooks(tmp_path: Path) -> None:
    def hook(app: web.Application, context: NodeContext) -> None:
        @app[API].route("GET", "/hello", summary="Hello", tags=["greetings"], response=Note)
        async def hello(request: web.Request) -> Note:
            return Note(id=0, title="hello", stars=context.settings.port)

    async with node_context(tmp_path, port=1234) as context:
        context.web_hooks.append(hook)
        async with client_of(make_app(context)) as client:
            assert (await (await client.get("/hello")).json())["stars"] == 1234
            document = await (await client.get("/openapi.json")).json()
    assert set(document["paths"]) == {"/healthz", "/metrics", "/hello"}


def _dumps(value: object) -> str:
    import json

    return json.dumps(value)

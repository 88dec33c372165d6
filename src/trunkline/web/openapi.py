"""JSON routes declared with pydantic models, and the OpenAPI 3.1 document they make.

Declare a route on an :class:`Api`; it registers the aiohttp handler, validates the request
body against the request model and the query string against the query model, serializes what
the handler returns with the response model, and describes all of it in the document served
at ``GET /openapi.json`` (browsable at ``GET /docs``, a page shipped in the package that works
offline)::

    api = Api(title="trunkline", version="0.1.0")

    class NewRoom(BaseModel):
        name: str = Field(min_length=1, max_length=80)

    class Room(BaseModel):
        id: int
        name: str

    @api.route("POST", "/rooms", summary="Create a room", tags=["rooms"],
               request=NewRoom, response=Room, status=201)
    async def create_room(request: web.Request, body: NewRoom) -> Room:
        return Room(id=1, name=body.name)

    class RoomList(BaseModel):
        rooms: list[Room]

    class Page(BaseModel):
        after: int = Field(default=0, ge=0, description="the last id of the previous page")
        limit: int = Field(default=50, ge=1, le=200)

    @api.route("GET", "/rooms", summary="A page of rooms", tags=["rooms"], query=Page,
               response=RoomList)
    async def list_rooms(request: web.Request, *, query: Page) -> RoomList:
        return RoomList(rooms=await rooms_after(query.after, query.limit))

    api.add_routes(app)

A handler takes the request, the validated body as its second argument when the route has a
request model, and the validated query as the keyword argument ``query`` when the route has a
query model. It returns a model instance (sent with the route's ``status``), :class:`Respond`
for another status, or any aiohttp response as it is. It may raise
:class:`~trunkline.web.errors.ApiError`.

A query model's fields are the route's query parameters, each documented in ``parameters``
(``in: query``) with its schema, whether it is required and its description. They are
validated from the query string's text, so the model's own rules apply as for a body (``int``
parses ``"12"``; ``Field(ge=1)`` bounds it); a field ``X | None = None`` is an optional
parameter of type ``X``. Parameters the model does not name are ignored; one it names may be
given once.

Errors of the query and the body, before the handler runs, all in the shape of
:class:`~trunkline.web.errors.ErrorBody`:

- ``400 invalid_request``: a query parameter is given more than once (``type``
  ``repeated``), or the query does not match the model: the message names the first
  parameter at fault, and ``details`` lists each failure (``loc``: the parameter's name,
  ``message``, ``type``), as for a body;
- ``415 unsupported_media_type``: the content type is not ``application/json`` (or ``+json``);
- ``413 payload_too_large``: the body is larger than ``max_body_bytes``;
- ``400 invalid_request``: the body is not JSON, or does not match the model (``details``
  lists each failure: ``loc``, ``message``, ``type``).
"""

from __future__ import annotations

import http
import json
import re
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from aiohttp import web
from pydantic import BaseModel, ValidationError
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from .docs_page import DOCS_HTML
from .errors import ApiError, ErrorBody

__all__ = [
    "API",
    "DEFAULT_MAX_BODY_BYTES",
    "OPENAPI_VERSION",
    "Api",
    "Operation",
    "Respond",
]

OPENAPI_VERSION = "3.1.0"
DEFAULT_MAX_BODY_BYTES = 1_048_576

Method = Literal["GET", "POST", "PUT", "PATCH", "DELETE"]
Handler = Callable[..., Awaitable[Any]]

_PATH_PARAMETER = re.compile(r"\{([^}:]+)(?::[^}]*)?\}")
_CHUNK_BYTES = 65_536


@dataclass(frozen=True, slots=True)
class Respond:
    """A handler's answer with a status other than its route's (``Respond(503, health)``)."""

    status: int
    body: BaseModel


@dataclass(frozen=True, slots=True)
class Operation:
    """One declared route; see :meth:`Api.route` for the fields."""

    method: Method
    path: str
    handler: Handler
    summary: str
    tags: tuple[str, ...] = ()
    description: str | None = None
    request: type[BaseModel] | None = None
    response: type[BaseModel] | None = None
    status: int = 200
    responses: Mapping[int, type[BaseModel]] = field(default_factory=dict)
    query: type[BaseModel] | None = None
    operation_id: str | None = None
    max_body_bytes: int | None = None


class Api:
    """A set of JSON routes and their OpenAPI document; see the module documentation.

    Args:
        title, version, description: the document's ``info``.
        max_body_bytes: the largest request body read, unless a route sets its own.
    """

    def __init__(
        self,
        *,
        title: str = "trunkline",
        version: str = "0.1.0",
        description: str | None = None,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    ) -> None:
        if max_body_bytes <= 0:
            raise ValueError(f"max_body_bytes must be > 0, not {max_body_bytes!r}")
        self.title = title
        self.version = version
        self.description = description
        self.max_body_bytes = max_body_bytes
        self.operations: list[Operation] = []
        self._document: dict[str, Any] | None = None

    def route(
        self,
        method: Method,
        path: str,
        *,
        summary: str,
        tags: Iterable[str] = (),
        description: str | None = None,
        request: type[BaseModel] | None = None,
        response: type[BaseModel] | None = None,
        status: int = 200,
        responses: Mapping[int, type[BaseModel]] | None = None,
        query: type[BaseModel] | None = None,
        operation_id: str | None = None,
        max_body_bytes: int | None = None,
    ) -> Callable[[Handler], Handler]:
        """Declare a JSON route; decorates its handler (returned unchanged).

        Args:
            method, path: as aiohttp routes them (``/rooms/{id}``).
            summary: one line for the document.
            tags: groups of the document.
            description: more, for the document.
            request: the body's model; the handler then takes it as its second argument.
            response: the model of a successful answer, sent with ``status``.
            responses: other statuses the handler may answer with (:class:`Respond`), and
                their models.
            query: the query string's model, one field per parameter; the handler then takes
                it as the keyword argument ``query``.
            operation_id: the document's id of the operation (default: the handler's name).
            max_body_bytes: this route's body limit.

        Raises:
            ValueError: the method and path are declared already.
        """
        if any(op.method == method and op.path == path for op in self.operations):
            raise ValueError(f"route {method} {path} is declared twice")

        def register(handler: Handler) -> Handler:
            self.operations.append(
                Operation(
                    method=method,
                    path=path,
                    handler=handler,
                    summary=summary,
                    tags=tuple(tags),
                    description=description,
                    request=request,
                    response=response,
                    status=status,
                    responses=dict(responses or {}),
                    query=query,
                    operation_id=operation_id or handler.__name__,
                    max_body_bytes=max_body_bytes,
                )
            )
            self._document = None
            return handler

        return register

    def add_routes(self, app: web.Application) -> None:
        """Register every declared route, ``GET /openapi.json`` and ``GET /docs`` on ``app``."""
        for operation in self.operations:
            app.router.add_route(operation.method, operation.path, self._endpoint(operation))
        app.router.add_get("/openapi.json", self._serve_document, allow_head=False)
        app.router.add_get("/docs", _serve_docs, allow_head=False)

    # -- the document ----------------------------------------------------------------------------

    def document(self) -> dict[str, Any]:
        """The OpenAPI 3.1 document of the declared routes."""
        if self._document is None:
            self._document = self._build_document()
        return self._document

    def _build_document(self) -> dict[str, Any]:
        wanted: list[tuple[type[BaseModel], JsonSchemaMode]] = [(ErrorBody, "serialization")]
        # In the order declared, as a list: the document must not change from run to run.
        queries = list(dict.fromkeys(op.query for op in self.operations if op.query))
        for op in self.operations:
            if op.request is not None:
                wanted.append((op.request, "validation"))
            for model in (op.response, *op.responses.values()):
                if model is not None:
                    wanted.append((model, "serialization"))
        others = list(dict.fromkeys(wanted))
        wanted = others + [(q, "validation") for q in queries if (q, "validation") not in others]
        schemas, definitions = models_json_schema(
            wanted, ref_template="#/components/schemas/{model}"
        )
        error = _json_content(schemas[(ErrorBody, "serialization")])
        components: dict[str, Any] = definitions.get("$defs", {})
        query_schemas = {q: components[_ref_name(schemas[(q, "validation")])] for q in queries}
        paths: dict[str, dict[str, Any]] = {}
        for op in self.operations:
            path = _PATH_PARAMETER.sub(r"{\1}", op.path)
            entry: dict[str, Any] = {
                "operationId": op.operation_id,
                "summary": op.summary,
                "tags": list(op.tags),
            }
            if op.description:
                entry["description"] = op.description
            parameters = [
                {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
                for name in _PATH_PARAMETER.findall(op.path)
            ]
            if op.query is not None:
                parameters += _query_parameters(query_schemas[op.query])
            if parameters:
                entry["parameters"] = parameters
            responses: dict[str, Any] = {}
            answers = {op.status: op.response, **op.responses}
            for status, model in sorted(answers.items()):
                answer: dict[str, Any] = {"description": _phrase(status)}
                if model is not None:
                    answer.update(_json_content(schemas[(model, "serialization")]))
                responses[str(status)] = answer
            if op.request is not None:
                entry["requestBody"] = {
                    "required": True,
                    **_json_content(schemas[(op.request, "validation")]),
                }
                for status in (400, 413, 415):
                    responses.setdefault(str(status), {"description": _phrase(status), **error})
            if op.query is not None:
                responses.setdefault("400", {"description": _phrase(400), **error})
            responses["default"] = {"description": "An error", **error}
            entry["responses"] = responses
            paths.setdefault(path, {})[op.method.lower()] = entry
        info: dict[str, Any] = {"title": self.title, "version": self.version}
        if self.description:
            info["description"] = self.description
        return {
            "openapi": OPENAPI_VERSION,
            "info": info,
            "paths": paths,
            "components": {
                "schemas": _without_query_models(
                    components,
                    {_ref_name(schemas[(q, "validation")]) for q in queries},
                    {_ref_name(schemas[key]) for key in others},
                )
            },
        }

    async def _serve_document(self, request: web.Request) -> web.Response:
        return web.json_response(self.document())

    # -- handling requests -----------------------------------------------------------------------

    def _endpoint(self, op: Operation) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        limit = op.max_body_bytes or self.max_body_bytes

        async def endpoint(request: web.Request) -> web.StreamResponse:
            arguments: list[Any] = [request]
            keywords: dict[str, Any] = {}
            if op.query is not None:
                keywords["query"] = _read_query(request, op.query)
            if op.request is not None:
                arguments.append(await _read_body(request, op.request, limit))
            return _respond(op, await op.handler(*arguments, **keywords))

        endpoint.__name__ = op.handler.__name__
        return endpoint


API: web.AppKey[Api] = web.AppKey("trunkline.web.api", Api)
"""Where an app keeps its :class:`Api`, for components that declare routes on it."""


async def _read_body(request: web.Request, model: type[BaseModel], limit: int) -> BaseModel:
    content_type = request.content_type
    if not (content_type == "application/json" or content_type.endswith("+json")):
        raise ApiError(
            415,
            "unsupported_media_type",
            f"the body must be JSON (Content-Type: application/json), not {content_type}",
        )
    too_large = ApiError(
        413, "payload_too_large", f"the body is larger than the limit of {limit} bytes"
    )
    if request.content_length is not None and request.content_length > limit:
        raise too_large
    raw = bytearray()
    while chunk := await request.content.read(_CHUNK_BYTES):
        raw += chunk
        if len(raw) > limit:
            raise too_large
    try:
        return model.model_validate_json(bytes(raw))
    except ValidationError as error:
        problems = error.errors(include_url=False, include_context=False, include_input=False)
        if any(problem["type"] == "json_invalid" for problem in problems):
            raise ApiError(400, "invalid_request", "the body is not valid JSON") from None
        details = [
            {"loc": list(problem["loc"]), "message": problem["msg"], "type": problem["type"]}
            for problem in problems
        ]
        raise ApiError(
            400, "invalid_request", f"the body does not match {model.__name__}", details
        ) from None


def _read_query(request: web.Request, model: type[BaseModel]) -> BaseModel:
    named = {info.alias or name for name, info in model.model_fields.items()}
    given: dict[str, str] = {}
    for name, value in request.query.items():
        if name in given and name in named:
            # Which one was meant cannot be known; taking either would be a guess.
            problem = {"loc": [name], "message": "given more than once", "type": "repeated"}
            raise ApiError(
                400,
                "invalid_request",
                f"query parameter {name} is given more than once",
                [problem],
            )
        given.setdefault(name, value)
    try:
        return model.model_validate(given)
    except ValidationError as error:
        problems = error.errors(include_url=False, include_context=False, include_input=False)
        details = [
            {"loc": list(problem["loc"]), "message": problem["msg"], "type": problem["type"]}
            for problem in problems
        ]
        first = problems[0]
        name = ".".join(str(part) for part in first["loc"])
        if not name:
            message = f"the query does not match {model.__name__}: {first['msg']}"
        elif first["type"] == "missing":
            message = f"query parameter {name} is required"
        else:
            message = f"query parameter {name}: {first['msg']}"
        if len(problems) > 1:
            message += f" (and {len(problems) - 1} more: see details)"
        raise ApiError(400, "invalid_request", message, details) from None


def _ref_name(schema: Mapping[str, Any]) -> str:
    """The component a model's ``{"$ref": "#/components/schemas/<name>"}`` names."""
    return str(schema["$ref"]).rsplit("/", 1)[-1]


def _query_parameters(schema: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The ``parameters`` of a query model's schema: one per property, in order."""
    required = set(schema.get("required", ()))
    parameters = []
    for name, found in schema.get("properties", {}).items():
        property_schema = {k: v for k, v in found.items() if k not in ("title", "description")}
        parameter: dict[str, Any] = {
            "name": name,
            "in": "query",
            "required": name in required,
            "schema": _sendable(property_schema),
        }
        if found.get("description"):
            parameter["description"] = found["description"]
        parameters.append(parameter)
    return parameters


def _sendable(schema: dict[str, Any]) -> dict[str, Any]:
    """A parameter's schema without ``null``, which a query string cannot say: ``X | None``
    with the default ``None`` is an optional ``X``."""
    choices = schema.get("anyOf")
    if not isinstance(choices, list) or {"type": "null"} not in choices:
        return schema
    rest = [choice for choice in choices if choice != {"type": "null"}]
    sendable = {k: v for k, v in schema.items() if k != "anyOf"}
    if sendable.get("default", ...) is None:
        del sendable["default"]
    if len(rest) == 1:
        return {**rest[0], **sendable}
    return {"anyOf": rest, **sendable}


def _without_query_models(
    components: dict[str, Any], query_names: set[str], other_names: set[str]
) -> dict[str, Any]:
    """The components, less the schemas of query models that are nothing else: their fields
    are parameters, and no body refers to them."""
    unused = query_names - other_names
    kept = {name: schema for name, schema in components.items() if name not in unused}
    referred = json.dumps(kept)
    return {
        name: schema
        for name, schema in components.items()
        if name not in unused or f'"#/components/schemas/{name}"' in referred
    }


def _respond(op: Operation, result: Any) -> web.StreamResponse:
    if isinstance(result, web.StreamResponse):
        return result
    status, body = (
        (result.status, result.body) if isinstance(result, Respond) else (op.status, result)
    )
    if body is None:
        return web.Response(status=status)
    if not isinstance(body, BaseModel):
        raise TypeError(
            f"handler {op.handler.__name__} of {op.method} {op.path} must return a pydantic "
            f"model, Respond or a response, not {body!r}"
        )
    return web.Response(status=status, text=body.model_dump_json(), content_type="application/json")


def _json_content(schema: Mapping[str, Any]) -> dict[str, Any]:
    return {"content": {"application/json": {"schema": dict(schema)}}}


def _phrase(status: int) -> str:
    try:
        return http.HTTPStatus(status).phrase
    except ValueError:
        return f"Status {status}"


async def _serve_docs(request: web.Request) -> web.Response:
    response = web.Response(text=DOCS_HTML, content_type="text/html")
    # The page is whole: it may load nothing but /openapi.json, from here.
    response.headers["Content-Security-Policy"] = (
        "default-src 'none'; connect-src 'self'; script-src 'unsafe-inline'; "
        "style-src 'unsafe-inline'"
    )
    return response

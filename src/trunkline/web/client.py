"""The browser chat client: the page at ``GET /`` and its files under ``/client/``.

The client is plain HTML, CSS and JavaScript modules in the package's ``web/client/`` folder,
served as they are: no build step, nothing loaded from another host, so it works offline.
See ``docs/client.md``.

Caching: every file is read once, when the app is made. The files are served under a path
that names the digest of them all (``/client/<digest>/main.js``) and are cached for a year as
immutable; a change to any file changes the digest, and with it every path the page names.
Imports between modules are relative, so they stay under the same digest. A request naming
another digest (a page loaded just before an upgrade) gets today's file, not to be cached.
The page itself is revalidated on each load (``no-cache`` with an ``ETag``; 304 when it has
not changed).

The page's Content-Security-Policy allows scripts, styles and images from this node only
(no inline script or style), connections to this node only (the API and ``/socket``), no
frames, no forms posted anywhere and no ``<base>``.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from importlib import resources

from aiohttp import web

__all__ = [
    "ASSETS_PREFIX",
    "CONTENT_SECURITY_POLICY",
    "ClientFiles",
    "add_client_routes",
    "load_client_files",
]

ASSETS_PREFIX = "/client/"
"""Where the client's files are served, each under the digest of them all."""

CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; manifest-src 'self'; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'"
)
"""The page's policy: everything from this node, nothing inline, nothing from elsewhere."""

_PAGE = "index.html"
_ASSETS_MARKER = "%ASSETS%"  # in the page: replaced by the assets' path, digest included
_CONTENT_TYPES = {
    ".css": "text/css",
    ".js": "text/javascript",
    ".svg": "image/svg+xml",
}
_FILE_NAME = re.compile(r"[a-z0-9][a-z0-9_-]*\.(?:css|js|svg)")
_SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
_IMMUTABLE = "public, max-age=31536000, immutable"


@dataclass(frozen=True)
class ClientFiles:
    """The client, as served: the page and the files it loads, by name."""

    digest: str
    page: bytes
    page_etag: str
    assets: dict[str, bytes]

    @property
    def assets_path(self) -> str:
        """The path the page loads its files from: ``/client/<digest>``."""
        return ASSETS_PREFIX + self.digest


def load_client_files() -> ClientFiles:
    """Read the client's files from the package (``trunkline/web/client/``)."""
    folder = resources.files("trunkline.web").joinpath("client")
    assets: dict[str, bytes] = {}
    page_template = b""
    for entry in folder.iterdir():
        if entry.name == _PAGE:
            page_template = entry.read_bytes()
        elif _FILE_NAME.fullmatch(entry.name):
            assets[entry.name] = entry.read_bytes()
    if not page_template:
        raise FileNotFoundError(f"the chat client's {_PAGE} is missing from {folder}")
    hashed = hashlib.sha256(page_template)
    for name in sorted(assets):
        hashed.update(name.encode() + b"\0" + assets[name] + b"\0")
    digest = hashed.hexdigest()[:16]
    page = page_template.replace(_ASSETS_MARKER.encode(), (ASSETS_PREFIX + digest).encode())
    return ClientFiles(digest=digest, page=page, page_etag=f'"{digest}"', assets=assets)


def add_client_routes(app: web.Application) -> None:
    """Serve the chat client: ``GET /`` and ``GET /client/{digest}/{name}``."""
    files = load_client_files()

    async def page(request: web.Request) -> web.StreamResponse:
        headers = {
            **_SECURITY_HEADERS,
            "Cache-Control": "no-cache",
            "ETag": files.page_etag,
            "Content-Security-Policy": CONTENT_SECURITY_POLICY,
            "X-Frame-Options": "DENY",
        }
        if files.page_etag in _etags(request.headers.get("If-None-Match", "")):
            return web.Response(status=304, headers=headers)
        return web.Response(
            body=files.page, content_type="text/html", charset="utf-8", headers=headers
        )

    async def asset(request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        body = files.assets.get(name)
        if body is None:
            raise web.HTTPNotFound(text=f"no client file {name!r}")
        current = request.match_info["digest"] == files.digest
        suffix = name[name.rindex(".") :]
        return web.Response(
            body=body,
            content_type=_CONTENT_TYPES[suffix],
            charset=None if suffix == ".svg" else "utf-8",
            headers={**_SECURITY_HEADERS, "Cache-Control": _IMMUTABLE if current else "no-cache"},
        )

    app.router.add_get("/", page, name="client_page")
    app.router.add_get(ASSETS_PREFIX + "{digest:[0-9a-f]{1,64}}/{name}", asset, name="client_file")


def _etags(header: str) -> set[str]:
    """The entity tags of an ``If-None-Match`` header (weak ones compared as strong)."""
    return {tag.strip().removeprefix("W/") for tag in header.split(",") if tag.strip()}

"""The browser client's files: ``GET /`` and ``/client/<digest>/<name>``, their caching and
security headers, and checks on the shipped JavaScript (no HTML built from strings)."""

from __future__ import annotations

import re
from importlib import resources
from pathlib import Path

import pytest
from web_helpers import node_client

from trunkline.web.client import CONTENT_SECURITY_POLICY, load_client_files

pytestmark = pytest.mark.real_clock

CLIENT = resources.files("trunkline.web").joinpath("client")


async def test_the_page_names_its_files_under_their_digest(tmp_path: Path) -> None:
    files = load_client_files()
    async with node_client(tmp_path) as (_, client):
        response = await client.get("/")
        assert response.status == 200
        assert response.content_type == "text/html"
        assert response.headers["Cache-Control"] == "no-cache"
        assert response.headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        page = await response.text()
        assert "%ASSETS%" not in page
        named = re.findall(r'(?:src|href)="(/client/[^"]+)"', page)
        assert f"/client/{files.digest}/main.js" in named
        assert f"/client/{files.digest}/style.css" in named
        # Every file the page names is served, cached for good.
        for path in named:
            asset = await client.get(path)
            assert asset.status == 200, path
            assert asset.headers["Cache-Control"] == "public, max-age=31536000, immutable"
            assert asset.headers["X-Content-Type-Options"] == "nosniff"
        script = await client.get(f"/client/{files.digest}/main.js")
        assert script.content_type == "text/javascript"
        assert (await client.get(f"/client/{files.digest}/style.css")).content_type == "text/css"
        assert (await client.get(f"/client/{files.digest}/icon.svg")).content_type == (
            "image/svg+xml"
        )


async def test_the_page_is_revalidated_with_its_etag(tmp_path: Path) -> None:
    async with node_client(tmp_path) as (_, client):
        first = await client.get("/")
        etag = first.headers["ETag"]
        again = await client.get("/", headers={"If-None-Match": etag})
        assert again.status == 304
        assert await again.read() == b""
        assert again.headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
        other = await client.get("/", headers={"If-None-Match": '"something-else"'})
        assert other.status == 200


async def test_another_digest_is_served_but_not_kept(tmp_path: Path) -> None:
    async with node_client(tmp_path) as (_, client):
        old = await client.get("/client/0123456789abcdef/main.js")
        assert old.status == 200
        assert old.headers["Cache-Control"] == "no-cache"


@pytest.mark.parametrize(
    "path",
    [
        "/client/{digest}/nothing.js",
        "/client/{digest}/index.html",
        "/client/{digest}/..%2fclient.py",
        "/client/{digest}/../client.py",
        "/client/not-hex/main.js",
    ],
)
async def test_nothing_else_is_served(tmp_path: Path, path: str) -> None:
    files = load_client_files()
    async with node_client(tmp_path) as (_, client):
        response = await client.get(path.format(digest=files.digest))
        assert response.status == 404
        assert (await response.json())["error"]["code"] == "not_found"


def test_the_digest_follows_the_files() -> None:
    files = load_client_files()
    assert re.fullmatch(r"[0-9a-f]{16}", files.digest)
    assert load_client_files().digest == files.digest
    shipped = {entry.name for entry in CLIENT.iterdir()}
    assert set(files.assets) == shipped - {"index.html"}


def test_scripts_build_no_html_from_strings() -> None:
    # Every message is text: the page's DOM is built with createElement and text nodes.
    forbidden = re.compile(
        r"\.innerHTML|\.outerHTML|insertAdjacentHTML|document\.write|\beval\(|new Function"
    )
    for entry in CLIENT.iterdir():
        if entry.name.endswith(".js"):
            assert not forbidden.findall(entry.read_text()), entry.name


def test_the_page_preloads_every_module() -> None:
    # All modules are asked for at once, rather than one import level after another.
    page = CLIENT.joinpath("index.html").read_text()
    named = set(re.findall(r'href="%ASSETS%/([a-z]+\.js)"', page))
    named |= set(re.findall(r'src="%ASSETS%/([a-z]+\.js)"', page))
    shipped = {entry.name for entry in CLIENT.iterdir() if entry.name.endswith(".js")}
    assert named == shipped


def test_the_page_has_no_inline_script_or_style() -> None:
    page = CLIENT.joinpath("index.html").read_text()
    assert re.findall(r"<script(?![^>]*\bsrc=)", page) == []
    assert "<style" not in page
    assert re.findall(r"\sstyle=", page) == []
    assert re.findall(r"\son[a-z]+=", page) == []

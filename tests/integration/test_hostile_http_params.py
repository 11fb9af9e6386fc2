"""Hostile path and query parameters on every route and page of the API: always a clear 4xx
with a structured error (JSON for the API, an HTML page for the pages), never a 5xx, never a
broken connection (issue 14, item 10).

The routes and their parameters come from the app's own route table, so a new route is
covered without touching this test. Requests go to the real uvicorn server on loopback; raw
bytes a client library would refuse to send (CRLF, NUL, non-ASCII in the request line) go
through a plain socket.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from urllib.parse import quote, urlsplit

import httpx
import pytest
from fastapi.routing import APIRoute, iter_route_contexts
from starlette.routing import Mount

from services.client.site import SiteClient
from services.ledger.connection import connect
from services.runtime.system import System
from tests.integration.helpers import event, parameters

pytestmark = pytest.mark.integration

TRIAL = "HOSTILE-TRIAL"
SITES = ("site01", "site02")
VALID = {"trial": TRIAL, "patient": "P0001", "site": "site01", "paramcd": "OS", "dataset": "adsl"}
# Read by every route from the query string, whatever the route declares.
EVERY_ROUTE_READS = ("as_of", "token")

# Values to put where an id, a date or a word is expected. Text is percent-encoded on the
# way; RAW values are sent as written (already percent-escaped), so the server decodes them.
HOSTILE = (
    "\x00",
    "P0001\x00",
    "\x01",
    "\x1b[31mred",
    "\x7f",
    "\x9b",
    "\t",
    "\r\n",
    "a\r\nSet-Cookie: owned=1",
    "%00",
    "A" * 5000,
    "P" * 65,
    "",
    "患者",
    "P0001\u202e",
    "😀",
    "..",
    "../../etc/passwd",
    "site01.>",
    "' OR 1=1 --",
    "<script>alert(1)</script>",
    "-1",
    "1e309",
    "0001-01-01T00:00:00+01:00",
    "9999-12-31T23:59:59-14:00",
)
RAW = ("%00", "%ff", "%c3%28", "%ed%a0%80", "%0d%0a", "%zz")


@dataclass(frozen=True)
class Param:
    route: str
    where: str  # "path" or "query"
    name: str
    page: bool


def routes_and_params() -> list[Param]:
    """Every GET route and page of the app with each of its path and query parameters."""
    from services.api.app import create_app
    from services.config.settings import Settings

    app = create_app(Settings(), tokens={"admin": "x"})
    found: list[Param] = []
    for context in iter_route_contexts(app.routes):
        route, path = context.original_route, context.path or ""
        if isinstance(route, Mount):
            found.append(Param(path + "/{path}", "path", "path", page=True))
            continue
        if not isinstance(route, APIRoute) or "GET" not in route.methods:
            continue
        page = not path.startswith("/api/")
        names = [p.name for p in route.dependant.path_params]
        found += [Param(path, "path", name, page) for name in names]
        queries = {p.alias for p in route.dependant.query_params} | set(EVERY_ROUTE_READS)
        found += [Param(path, "query", name, page) for name in sorted(queries)]
    return found


def url_of(param: Param, value: str, raw: bool) -> str:
    encoded = value if raw else quote(value, safe="")
    path = param.route
    for name in VALID:
        filler = encoded if param.where == "path" and name == param.name else VALID[name]
        path = path.replace("{" + name + "}", filler)
    if param.name == "path" and param.where == "path":
        path = path.replace("{path}", encoded)
    if param.where == "query":
        path += f"?{param.name}={encoded}"
    return path


@pytest.fixture(scope="module")
async def system(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[System]:
    saved = {k: os.environ.pop(k) for k in list(os.environ) if k.startswith("LEDGER_")}
    running = System(tmp_path_factory.mktemp("hostile"), sites=SITES)
    try:
        await running.start()
        settings = running.settings
        admin = await connect(settings.nats_url or "", settings.creds_for("admin"))
        assert (await SiteClient(admin, TRIAL, "_sponsor").submit(parameters(TRIAL)))[
            "status"
        ] == "accepted"
        await admin.close()
        site = await connect(settings.nats_url or "", settings.creds_for("site:site01"))
        for kind in ("enrolled", "scan_read", "infusion_given", "ae_reported"):
            reply = await SiteClient(site, TRIAL, "site01").submit(event(kind, TRIAL))
            assert reply["status"] == "accepted", reply
        await site.close()
        await running.services["projector"].wait_caught_up(60)
        yield running
    finally:
        await running.stop()
        os.environ.update(saved)


async def answer_to(http: httpx.AsyncClient, url: str) -> httpx.Response:
    """The answer to GET `url`, body read unless it is a live event stream (which never
    ends: its status and headers are the answer)."""
    async with http.stream("GET", url) as answer:
        if not answer.headers.get("content-type", "").startswith("text/event-stream"):
            await answer.aread()
        return answer


def judged(param: Param, answer: httpx.Response) -> str | None:
    """What is wrong with the answer to a hostile value, or None when it is a clear answer."""
    if answer.status_code >= 500:
        return f"{answer.status_code}: {answer.text[:200]}"
    if answer.status_code < 400:
        return None  # the value happened to be acceptable (e.g. an empty optional filter)
    kind = answer.headers.get("content-type", "")
    if param.page:
        if not kind.startswith("text/html"):
            return f"{answer.status_code} page error as {kind!r}"
    elif not kind.startswith("application/json") or "detail" not in answer.json():
        return f"{answer.status_code} without a JSON error: {answer.text[:200]}"
    if "Traceback" in answer.text:
        return "a traceback reached the user"
    return None


PARAMS = routes_and_params()
ROUTES = sorted({param.route for param in PARAMS})


def test_the_route_table_is_covered() -> None:
    assert len(ROUTES) >= 20 and len(PARAMS) >= 60, ROUTES


@pytest.mark.parametrize("route", ROUTES)
async def test_hostile_parameters_get_a_structured_client_error(system: System, route: str) -> None:
    """Every path and query parameter of the route, one hostile value at a time (the others
    valid), read with the admin token: no 5xx, a JSON error (an HTML page for the pages)."""
    cases = [
        (param, value, raw)
        for param in PARAMS
        if param.route == route and not (route.endswith("/stream") and param.where == "query")
        for value, raw in [*((v, False) for v in HOSTILE), *((v, True) for v in RAW)]
    ]
    token = system.runtime["api_tokens"]["admin"]
    failures: list[str] = []
    async with httpx.AsyncClient(
        base_url=system.runtime["api_url"],
        headers={"Authorization": f"Bearer {token}"},
        timeout=60,
    ) as http:
        for param, value, raw in cases:
            url = url_of(param, value, raw)
            try:
                answer = await answer_to(http, url)
            except httpx.HTTPError as exc:
                failures.append(f"{url[:120]!r}: connection failed: {exc!r}")
                continue
            problem = judged(param, answer)
            if problem:
                failures.append(f"{param.where} {param.name} = {value[:40]!r}: {problem}")
    assert failures == [], f"{len(failures)} of {len(cases)}:\n" + "\n".join(failures[:40])


async def raw_exchange(url: str, request_line: bytes) -> bytes:
    """Send one raw request and read the answer until the server closes or 10 s pass."""
    parts = urlsplit(url)
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    try:
        writer.write(request_line + b"Host: 127.0.0.1\r\nConnection: close\r\n\r\n")
        await writer.drain()
        return await asyncio.wait_for(reader.read(), 10)
    finally:
        writer.close()


@pytest.mark.parametrize(
    "request_line",
    [
        b"GET /api/trials/HOSTILE\r\n-TRIAL/patients HTTP/1.1\r\n",
        b"GET /api/trials/HOSTILE-TRIAL/patients/P0001\r\nX-Evil: 1 HTTP/1.1\r\n",
        b"GET /trials/HOSTILE\r\nTRIAL HTTP/1.1\r\n",
        b"GET /api/trials/HOSTILE\x00TRIAL/patients HTTP/1.1\r\n",
        b"GET /api/trials/HOSTILE\xff\xfeTRIAL/patients HTTP/1.1\r\n",
        b"GET /api/trials/HOSTILE TRIAL/patients HTTP/1.1\r\n",
        b"GET /api/trials/HOSTILE-TRIAL/export/adsl.csv?as_of=\r\n HTTP/1.1\r\n",
    ],
)
async def test_raw_control_characters_in_the_request_line_get_a_400_answer(
    system: System, request_line: bytes
) -> None:
    answer = await raw_exchange(system.runtime["api_url"], request_line)
    status_line = answer.split(b"\r\n", 1)[0]
    assert status_line.startswith(b"HTTP/1.1 4"), answer[:300]
    async with httpx.AsyncClient(base_url=system.runtime["api_url"], timeout=30) as http:
        assert (await http.get("/openapi.json")).status_code == 200  # the server is still up


async def test_an_unexpected_error_is_logged_and_answered_without_a_traceback(
    system: System, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Whatever fails inside a route, the caller gets a JSON 500 with an error id to quote,
    never the exception's text or a traceback."""
    import services.api.app as api_app

    def broken(*_: object) -> object:
        raise RuntimeError("secret internals: /var/lib/ledger password=hunter2")

    monkeypatch.setattr(api_app, "_visible", broken)
    token = system.runtime["api_tokens"]["admin"]
    async with httpx.AsyncClient(
        base_url=system.runtime["api_url"],
        headers={"Authorization": f"Bearer {token}"},
        timeout=60,
    ) as http:
        answer = await http.get(f"/api/trials/{TRIAL}/patients")
        page = await http.get(f"/trials/{TRIAL}/patients")
    assert answer.status_code == 500
    assert set(answer.json()) == {"detail", "error_id"}
    assert "hunter2" not in answer.text and "Traceback" not in answer.text
    assert page.status_code == 500
    assert page.headers["content-type"].startswith("text/html")
    assert "hunter2" not in page.text and "Traceback" not in page.text

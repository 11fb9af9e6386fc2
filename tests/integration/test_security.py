"""Who may do what: the role × action matrix on a real nats-server with the system's own
authorization config, the same for the HTTP API, and sites confined to their own site_id."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import nats
import nkeys
import pytest
from nats.aio.client import Client
from nats.js import api as js_api
from nats.js.errors import APIError

from services.client.site import SiteClient
from services.ledger.connection import connect
from services.ledger.io import ledger_config, read_stream
from services.runtime.embedded import nats_server_binary
from services.runtime.system import System
from services.security.nats_auth import (
    all_roles,
    env_nkey,
    inbox_prefix,
    render_authorization,
    user_name,
)
from tests.integration.helpers import event, parameters

pytestmark = pytest.mark.integration

TRIAL = "SEC-TRIAL"
SITES = ("site01", "site02")
DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "nats"
ROLE_OF = {
    "site A": "site:site01",
    "site B": "site:site02",
    "writer": "writer",
    "projector": "projector",
    "alerter": "alerter",
    "safety officer": "safety",
    "auditor": "auditor",
    "admin": "admin",
    "anonymous": None,
}
ALLOW, DENY, REFUSED = "allow", "deny", "refused"  # refused: authorized, but the stream says no


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("secure")


@pytest.fixture(scope="module")
async def system(data_dir: Path) -> AsyncIterator[System]:
    """The whole system as `trial-ledger up` runs it (auth on), with a trial of two sites."""
    saved = {k: os.environ.pop(k) for k in list(os.environ) if k.startswith("LEDGER_")}
    running = await System(data_dir, sites=SITES).start()
    try:
        settings = running.settings
        admin = await connect(settings.nats_url or "", settings.creds_for("admin"))
        assert (await SiteClient(admin, TRIAL, "_sponsor").submit(parameters(TRIAL)))[
            "status"
        ] == "accepted"
        await admin.jetstream().add_stream(
            js_api.StreamConfig(name="SCRATCH", subjects=["scratch.>"])
        )
        await admin.jetstream().publish(
            "alerts.sae.SEC-TRIAL.site01", b"{}", headers={"Nats-Msg-Id": "sae-matrix"}
        )
        await admin.close()
        for site, patient in (("site01", "P0001"), ("site02", "P0002")):
            conn = await connect(settings.nats_url or "", settings.creds_for(f"site:{site}"))
            reply = await SiteClient(conn, TRIAL, site).submit(
                event("enrolled", TRIAL, site, patient)
            )
            assert reply["status"] == "accepted", reply
            await conn.close()
        await running.services["projector"].wait_caught_up(60)
        yield running
    finally:
        await running.stop()
        os.environ.update(saved)


# -- NATS -----------------------------------------------------------------------------------
Action = Callable[[Client], Awaitable[Any]]


async def _request(nc: Client, subject: str) -> None:
    await nc.request(subject, b"{}", timeout=3)


async def _subscribe(nc: Client, subject: str) -> None:
    await nc.subscribe(subject)
    await nc.flush()
    await asyncio.sleep(0.3)  # a refused subscription is reported asynchronously


async def _read_ledger(nc: Client) -> None:
    await nc.jetstream(timeout=3).get_msg("LEDGER", 1, direct=True)


async def _create_consumer(nc: Client, stream: str = "LEDGER") -> None:
    js = nc.jetstream(timeout=3)
    info = await js.add_consumer(
        stream,
        js_api.ConsumerConfig(
            ack_policy=js_api.AckPolicy.NONE, mem_storage=True, inactive_threshold=5.0
        ),
    )
    await js.delete_consumer(stream, info.name)


async def _create_named_consumer(nc: Client, stream: str = "LEDGER") -> None:
    js = nc.jetstream(timeout=3)
    name = f"matrix_{uuid.uuid4().hex[:8]}"
    await js.add_consumer(
        stream,
        js_api.ConsumerConfig(
            name=name, durable_name=name, ack_policy=js_api.AckPolicy.EXPLICIT, mem_storage=True
        ),
    )
    await js.delete_consumer(stream, name)


async def _update_ledger(nc: Client) -> None:
    config = ledger_config()
    config.description = "renamed by the matrix test"
    await nc.jetstream(timeout=3).update_stream(config)


ACTIONS: dict[str, Action] = {
    "publish to site A's intake": lambda nc: _request(nc, f"intake.{TRIAL}.site01"),
    "publish to site B's intake": lambda nc: _request(nc, f"intake.{TRIAL}.site02"),
    "submit to the safety intake": lambda nc: _request(nc, f"intake.{TRIAL}._safety"),
    "publish to the ledger directly": lambda nc: nc.jetstream(timeout=3).publish(
        "ledger.MATRIX.site01.P0001.enrolled", b"{}"
    ),
    "read the ledger": _read_ledger,
    "create a consumer on the ledger": _create_consumer,
    "delete a stream": lambda nc: nc.jetstream(timeout=3).delete_stream("SCRATCH"),
    "purge the ledger": lambda nc: nc.jetstream(timeout=3).purge_stream("LEDGER"),
    "update the ledger stream": _update_ledger,
    "consume alerts": lambda nc: _create_consumer(nc, "ALERTS"),
    "create a named consumer on the ledger": _create_named_consumer,
    "create a named consumer on alerts": lambda nc: _create_named_consumer(nc, "ALERTS"),
    "subscribe to live alerts": lambda nc: _subscribe(nc, "alerts.sae.>"),
    "publish an alert": lambda nc: nc.jetstream(timeout=3).publish(
        f"alerts.sae.{TRIAL}.site01", b"{}", headers={"Nats-Msg-Id": "sae-forged"}
    ),
    "read site A's replies": lambda nc: _subscribe(
        nc, inbox_prefix(user_name("site:site01")) + ".>"
    ),
}

EXPECTED_ALLOWED: dict[str, tuple[str, ...]] = {
    "publish to site A's intake": ("site A", "admin"),
    "publish to site B's intake": ("site B", "admin"),
    "submit to the safety intake": ("safety officer", "admin"),
    "publish to the ledger directly": ("writer", "admin"),
    "read the ledger": ("writer", "projector", "alerter", "auditor", "admin"),
    # Nameless (ephemeral) creates name the consumer only in the body: admin's alone (item 13).
    "create a consumer on the ledger": ("admin",),
    "delete a stream": ("admin",),
    "purge the ledger": (),
    "update the ledger stream": ("admin",),
    "consume alerts": ("admin",),
    # Named durables: LEDGER's are the projections' (the alerter's own name aside), ALERTS' the
    # officers'.
    "create a named consumer on the ledger": ("projector", "admin"),
    "create a named consumer on alerts": ("safety officer", "admin"),
    "subscribe to live alerts": ("safety officer", "admin"),
    "publish an alert": ("alerter", "admin"),
    "read site A's replies": ("site A", "admin"),
}
# Authorized for admin, and still refused by the LEDGER itself (deny_purge).
EXPECTED_REFUSED = {("purge the ledger", "admin")}

MATRIX = [
    (
        action,
        who,
        REFUSED
        if (action, who) in EXPECTED_REFUSED
        else ALLOW
        if who in EXPECTED_ALLOWED[action]
        else DENY,
    )
    for action in ACTIONS
    for who in ROLE_OF
]


async def probe(url: str, creds: str | None, action: Action) -> str:
    """allow / deny (permissions violation, or no connection at all) / refused (a JetStream
    API error: authorized but the stream refuses)."""
    violation = asyncio.Event()

    async def on_error(exc: Exception) -> None:
        if "permissions violation" in str(exc).lower():
            violation.set()

    try:
        if creds is None:
            nc = await nats.connect(
                url, allow_reconnect=False, connect_timeout=2, error_cb=on_error
            )
        else:
            nc = await connect(url, creds, name="matrix", error_cb=on_error, allow_reconnect=False)
    except Exception:  # no credentials, no connection: denied
        return DENY
    try:
        task = asyncio.ensure_future(action(nc))
        waiter = asyncio.ensure_future(violation.wait())
        await asyncio.wait({task, waiter}, timeout=6, return_when=asyncio.FIRST_COMPLETED)
        waiter.cancel()
        if violation.is_set():
            task.cancel()
            return DENY
        if not task.done():
            task.cancel()
            return "no answer"
        exc = task.exception()
        if exc is None:
            return ALLOW
        return REFUSED if isinstance(exc, APIError) else f"error: {exc!r}"
    finally:
        await nc.close()


@pytest.mark.parametrize(("action", "who", "expected"), MATRIX)
async def test_nats_role_matrix(system: System, action: str, who: str, expected: str) -> None:
    role = ROLE_OF[who]
    creds = system.settings.creds_for(role) if role else None
    assert await probe(system.settings.nats_url or "", creds, ACTIONS[action]) == expected


async def test_no_one_can_lift_the_ledgers_deny_delete_or_deny_purge(system: System) -> None:
    admin = await connect(system.settings.nats_url or "", system.settings.creds_for("admin"))
    js = admin.jetstream()
    for field in ("deny_delete", "deny_purge"):
        config = ledger_config()
        setattr(config, field, False)
        with pytest.raises(APIError):
            await js.update_stream(config)
    with pytest.raises(APIError):
        await js.delete_msg("LEDGER", 1)
    info = await js.stream_info("LEDGER")
    assert info.config.deny_delete and info.config.deny_purge
    await admin.close()


async def test_a_site_never_gets_another_sites_site_id_into_the_ledger(system: System) -> None:
    settings = system.settings
    url = settings.nats_url or ""
    conn = await connect(url, settings.creds_for("site:site01"))
    crafted = [
        event("enrolled", TRIAL, "site02", "P0777"),
        event("infusion_given", TRIAL, "site02", "P0002"),
        {**event("enrolled", TRIAL, "site01", "P0778"), "site_id": "site02"},
        {**event("enrolled", TRIAL, "site01", "P0779"), "site_id": "_sponsor"},
    ]
    own = SiteClient(conn, TRIAL, "site01")
    replies = [await own.submit(dict(item)) for item in crafted]
    replies += await own.submit_batch([dict(item) for item in crafted])
    assert all(r["status"] in ("rejected", "duplicate") for r in replies), replies
    assert all(r["status"] == "rejected" for r in replies[:4]), replies
    await conn.close()
    other_channels = [
        (f"intake.{TRIAL}.site02", crafted[0]),
        (f"intake.{TRIAL}._safety", crafted[1]),
        (f"intake.{TRIAL}._sponsor", crafted[0]),
        (f"ledger.{TRIAL}.site02.P0777.enrolled", crafted[0]),
    ]
    for subject, body in other_channels:

        async def publish(nc: Client, subject: str = subject, body: dict[str, Any] = body) -> None:
            await nc.request(subject, json.dumps(body).encode(), timeout=3)

        assert await probe(url, settings.creds_for("site:site01"), publish) == DENY, subject
    auditor = await connect(url, settings.creds_for("auditor"))
    stored = [m.json() async for m in read_stream(auditor.jetstream(), f"ledger.{TRIAL}.>")]
    await auditor.close()
    crafted_ids = {item["event_id"] for item in crafted}
    assert not crafted_ids & {s["event_id"] for s in stored}
    assert [s["patient_id"] for s in stored if s["site_id"] == "site02"] == ["P0002"]


def test_runtime_json_lists_every_roles_credentials_and_the_writers_public_key(
    system: System, data_dir: Path
) -> None:
    runtime = json.loads((data_dir / "runtime.json").read_text())
    assert set(runtime["credentials"]) == set(all_roles(SITES))
    for path in runtime["credentials"].values():
        assert Path(path).stat().st_mode & 0o777 == 0o600
    assert (data_dir / "nats" / "nats.conf").stat().st_mode & 0o777 == 0o600
    assert (
        runtime["writer_public_key"]
        == (data_dir / "keys" / "writer_ed25519.pub").read_text().strip()
    )
    assert (data_dir / "keys" / "writer_ed25519").stat().st_mode & 0o777 == 0o600


# -- HTTP -----------------------------------------------------------------------------------
HTTP_ROLES = (
    "admin",
    "api",
    "auditor",
    "safety",
    "statistician",
    "site:site01",
    "site:site02",
    "anonymous",
    "unknown token",
)
CROSS_SITE = {"admin", "api", "auditor", "safety", "statistician"}


def _headers(system: System, who: str) -> dict[str, str]:
    if who == "anonymous":
        return {}
    token = system.runtime["api_tokens"].get(who, "not-a-token")
    return {"Authorization": f"Bearer {token}"}


def _http_expected(who: str) -> dict[str, Any]:
    if who in ("anonymous", "unknown token"):
        return {"patients": 401, "P0001": 401, "P0002 events": 401, "trials": 401}
    visible = (
        {"P0001", "P0002"}
        if who in CROSS_SITE
        else {"site:site01": {"P0001"}, "site:site02": {"P0002"}}[who]
    )
    return {
        "patients": sorted(visible),
        "P0001": 200 if "P0001" in visible else 404,
        "P0002 events": 200 if "P0002" in visible else 404,
        "trials": 200,
    }


@pytest.mark.parametrize("who", HTTP_ROLES)
async def test_http_role_matrix(system: System, who: str) -> None:
    base = f"/api/trials/{TRIAL}"
    async with httpx.AsyncClient(
        base_url=system.runtime["api_url"], headers=_headers(system, who), timeout=20
    ) as http:
        listing = await http.get(f"{base}/patients")
        seen: dict[str, Any] = {
            "patients": sorted(p["patient_id"] for p in listing.json())
            if listing.status_code == 200
            else listing.status_code,
            "P0001": (await http.get(f"{base}/patients/P0001")).status_code,
            "P0002 events": (await http.get(f"{base}/patients/P0002/events")).status_code,
            "trials": (await http.get("/api/trials")).status_code,
        }
        other_site = await http.get(f"{base}/patients", params={"site": "site02"})
        writes = {
            method: (await http.request(method, f"{base}/patients/P0001", json={})).status_code
            for method in ("POST", "PUT", "PATCH", "DELETE")
        }
    assert seen == _http_expected(who)
    if who == "site:site01":
        assert other_site.json() == []
    assert writes == dict.fromkeys(writes, 405)


def test_the_http_api_has_no_route_that_writes(system: System) -> None:
    from services.api.app import create_app

    app = create_app(system.settings, tokens={"admin": "x"})
    methods = {m for route in app.routes for m in getattr(route, "methods", None) or ()}
    assert methods <= {"GET", "HEAD"}


# -- static deployment configs ----------------------------------------------------------------
@pytest.fixture
def deploy_env() -> dict[str, str]:
    env = dict(os.environ)
    for role in all_roles(SITES):
        seed = nkeys.encode_seed(os.urandom(32), nkeys.PREFIX_BYTE_USER)
        env[env_nkey(role).lstrip("$")] = nkeys.from_seed(seed).public_key.decode()
    return env


@pytest.mark.parametrize(
    "conf",
    ["nats-single.conf", "cluster/nats-1.conf", "cluster/nats-2.conf", "cluster/nats-3.conf"],
)
def test_deploy_configs_parse_and_carry_the_same_permissions(
    conf: str, deploy_env: dict[str, str]
) -> None:
    path = DEPLOY / conf
    checked = subprocess.run(
        [nats_server_binary(), "-t", "-c", str(path)],
        env=deploy_env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    lines = (DEPLOY / "authorization.conf").read_text().splitlines(keepends=True)
    authorization = "".join(line for line in lines if not line.startswith("#"))
    assert authorization == render_authorization(all_roles(SITES), env_nkey)
    assert "include" in path.read_text()

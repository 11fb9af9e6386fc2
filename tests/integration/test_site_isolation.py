"""Two sites that both call a patient "P0001": each site's token reads its own patient only,
on every route and page; cross-site roles see both and are asked which one they mean.

The trial is submitted through the real writer with each site's own credentials and read
over HTTP from the real API server with each role's token (issue 14, item 9).
"""

from __future__ import annotations

import os
import re
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi.routing import APIRoute, iter_route_contexts

from services.client.site import SiteClient
from services.ledger.connection import connect
from services.runtime.system import System
from tests.integration.helpers import chains_intact, event, ledger_of, parameters

pytestmark = pytest.mark.integration

TRIAL = "ISO-TRIAL"
SITES = ("site01", "site02")
SHARED = "P0001"  # enrolled at both sites
ONLY_AT_SITE01 = "P0009"
# Free text only one site's events carry: seen in another site's answer, it is a leak.
MARKER = {"site01": "rash seen at Alpha", "site02": "rash seen at Bravo"}
OTHER = {"site01": "site02", "site02": "site01"}


def course(site: str, patient: str) -> list[dict[str, Any]]:
    """Enrolment, baseline scan, a HAIC cycle and a serious AE (so an SAE alert), told apart
    per site by the AE's verbatim term and the ECOG at enrolment, recorded by the site's own
    coordinator."""
    by = {"recorded_by": f"{site}.coordinator"}
    return [
        event("enrolled", TRIAL, site, patient, data={"ecog": 0 if site == "site01" else 1}, **by),
        event("scan_read", TRIAL, site, patient, **by),
        event("infusion_given", TRIAL, site, patient, **by),
        event("ae_reported", TRIAL, site, patient, data={"verbatim": MARKER[site]}, **by),
    ]


@pytest.fixture(scope="module")
async def system(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[System]:
    saved = {k: os.environ.pop(k) for k in list(os.environ) if k.startswith("LEDGER_")}
    running = System(tmp_path_factory.mktemp("isolation"), sites=SITES)
    try:
        await running.start()
        admin = await connect(running.settings.nats_url or "", running.settings.creds_for("admin"))
        reply = await SiteClient(admin, TRIAL, "_sponsor").submit(parameters(TRIAL))
        assert reply["status"] == "accepted", reply
        await admin.close()
        yield running
    finally:
        await running.stop()
        os.environ.update(saved)


@pytest.fixture(scope="module")
async def submitted(system: System) -> dict[tuple[str, str], list[str]]:
    """The event ids each site recorded, per (site, patient), all accepted by the writer."""
    plan = {
        ("site01", SHARED): course("site01", SHARED),
        ("site02", SHARED): course("site02", SHARED),
        ("site01", ONLY_AT_SITE01): course("site01", ONLY_AT_SITE01),
    }
    ids: dict[tuple[str, str], list[str]] = {}
    for (site, patient), events in plan.items():
        conn = await connect(
            system.settings.nats_url or "", system.settings.creds_for(f"site:{site}")
        )
        client = SiteClient(conn, TRIAL, site)
        for item in events:
            reply = await client.submit(item)
            assert reply["status"] == "accepted", (site, patient, item["type"], reply)
        await conn.close()
        ids[(site, patient)] = [item["event_id"] for item in events]
    await system.services["projector"].wait_caught_up(60)
    if "alerter" in system.services:
        await system.services["alerter"].wait_caught_up(60)
    return ids


def client(system: System, role: str) -> httpx.AsyncClient:
    token = system.runtime["api_tokens"][role]
    return httpx.AsyncClient(
        base_url=system.runtime["api_url"],
        headers={"Authorization": f"Bearer {token}"},
        timeout=60,
    )


BASE = f"/api/trials/{TRIAL}"


async def test_a_patient_id_used_by_two_sites_is_two_patients_with_two_hash_chains(
    system: System, submitted: dict[tuple[str, str], list[str]]
) -> None:
    admin = await connect(system.settings.nats_url or "", system.settings.creds_for("admin"))
    entries = await ledger_of(admin.jetstream(), TRIAL)
    await admin.close()
    assert chains_intact(entries) == []
    firsts = {
        stored["site_id"]: stored["prev_hash"]
        for _, stored in entries
        if stored["patient_id"] == SHARED and stored["type"] == "enrolled"
    }
    assert firsts == {"site01": "0" * 64, "site02": "0" * 64}


@pytest.mark.parametrize("site", SITES)
async def test_each_site_reads_its_own_patient_under_a_shared_id(
    system: System, submitted: dict[tuple[str, str], list[str]], site: str
) -> None:
    async with client(system, f"site:{site}") as http:
        detail = await http.get(f"{BASE}/patients/{SHARED}")
        trail = await http.get(f"{BASE}/patients/{SHARED}/events")
        aes = await http.get(f"{BASE}/safety/aes", params={"patient": SHARED})
    assert detail.status_code == 200, detail.text
    body = detail.json()
    assert body["state"]["site_id"] == site
    assert body["state"]["ecog"] == (0 if site == "site01" else 1)
    assert [ae["verbatim"] for ae in body["adverse_events"]] == [MARKER[site]]
    assert {a["site_id"] for a in body["sae_alerts"]} == {site}
    assert {r["site_id"] for r in body["responses"]} <= {site}
    assert {r["site_id"] for r in body["endpoints"]} <= {site}
    assert trail.status_code == 200, trail.text
    assert [row["event_id"] for row in trail.json()] == submitted[(site, SHARED)]
    assert {row["event"]["site_id"] for row in trail.json()} == {site}
    assert [ae["verbatim"] for ae in aes.json()] == [MARKER[site]]


async def test_a_site_naming_another_site_gets_not_found(
    system: System, submitted: dict[tuple[str, str], list[str]]
) -> None:
    async with client(system, "site:site02") as http:
        answers = [
            await http.get(f"{BASE}/patients/{SHARED}", params={"site": "site01"}),
            await http.get(f"{BASE}/patients/{SHARED}/events", params={"site": "site01"}),
            await http.get(f"{BASE}/patients/{ONLY_AT_SITE01}"),
            await http.get(f"{BASE}/patients/{ONLY_AT_SITE01}/events"),
        ]
    assert [a.status_code for a in answers] == [404] * 4
    assert all(a.json() == {"detail": "no such patient"} for a in answers)


async def test_cross_site_roles_are_asked_which_site_a_shared_id_means(
    system: System, submitted: dict[tuple[str, str], list[str]]
) -> None:
    async with client(system, "auditor") as http:
        ambiguous = [
            await http.get(f"{BASE}/patients/{SHARED}"),
            await http.get(f"{BASE}/patients/{SHARED}/events"),
        ]
        chosen = await http.get(f"{BASE}/patients/{SHARED}", params={"site": "site02"})
        chosen_trail = await http.get(f"{BASE}/patients/{SHARED}/events", params={"site": "site02"})
        unambiguous = await http.get(f"{BASE}/patients/{ONLY_AT_SITE01}")
        both = await http.get(f"{BASE}/safety/aes", params={"patient": SHARED})
    for answer in ambiguous:
        assert answer.status_code == 409, answer.text
        assert answer.json()["sites"] == ["site01", "site02"]
        assert "site" in answer.json()["detail"]
    assert chosen.json()["state"]["site_id"] == "site02"
    assert [r["event_id"] for r in chosen_trail.json()] == submitted[("site02", SHARED)]
    assert unambiguous.status_code == 200
    assert unambiguous.json()["state"]["site_id"] == "site01"
    assert sorted(ae["verbatim"] for ae in both.json()) == sorted(MARKER.values())


async def test_the_patient_page_lets_a_cross_site_reader_choose_the_site(
    system: System, submitted: dict[tuple[str, str], list[str]]
) -> None:
    async with client(system, "auditor") as http:
        page = await http.get(f"/trials/{TRIAL}/patients/{SHARED}")
        links = re.findall(r'href="([^"]*patients/P0001[^"]*)"', page.text)
        followed = await http.get(links[-1].replace("&amp;", "&"))
    assert page.status_code == 409
    assert page.headers["content-type"].startswith("text/html")
    assert sorted(links) == [
        f"/trials/{TRIAL}/patients/{SHARED}?site=site01",
        f"/trials/{TRIAL}/patients/{SHARED}?site=site02",
    ]
    assert followed.status_code == 200
    assert f"Patient site02/{SHARED}" in followed.text
    assert "site02.coordinator" in followed.text
    assert "site01.coordinator" not in followed.text


def readable_urls(system: System) -> list[str]:
    """Every GET route and page of the app, path parameters filled for this trial (the live
    alert stream, which never ends, is judged by the NATS permissions instead)."""
    from services.api.app import create_app

    app = create_app(system.settings, tokens={"admin": "x"})
    fill = {"trial": TRIAL, "patient": SHARED, "paramcd": "OS"}
    urls = []
    for context in iter_route_contexts(app.routes):
        path = context.path or ""
        if not isinstance(context.original_route, APIRoute) or path.endswith("/stream"):
            continue
        for name, value in fill.items():
            path = path.replace("{" + name + "}", value)
        if "{dataset}" in path:
            urls += [path.replace("{dataset}", d) for d in ("adsl", "adtte", "adrs", "adae")]
        else:
            urls.append(path)
    return urls


@pytest.mark.parametrize("site", SITES)
async def test_no_route_or_page_shows_a_site_anything_of_another_site(
    system: System, submitted: dict[tuple[str, str], list[str]], site: str
) -> None:
    other = OTHER[site]
    foreign = [MARKER[other], *submitted[(other, SHARED)]]
    urls = readable_urls(system)
    assert len(urls) >= 15, urls
    leaks: list[str] = []
    async with client(system, f"site:{site}") as http:
        for url in urls:
            for params in ({}, {"site": other}, {"patient": SHARED}):
                answer = await http.get(url, params=params)
                assert answer.status_code < 500, (url, params, answer.text[:300])
                text = answer.text
                seen = [f for f in foreign if f in text]
                if seen or re.search(rf"\b{other}\b", text):
                    leaks.append(f"{url} {params}: {seen or other}")
    assert leaks == []


async def test_an_auditor_reads_both_sites_on_every_route_and_is_asked_only_about_one_patient(
    system: System, submitted: dict[tuple[str, str], list[str]]
) -> None:
    answers: dict[str, int] = {}
    async with client(system, "auditor") as http:
        for url in readable_urls(system):
            answer = await http.get(url)
            answers[url] = answer.status_code
            if answer.status_code == 200 and url.endswith(("/patients", "/safety/aes", "/adae")):
                assert "site01" in answer.text and "site02" in answer.text, url
    ambiguous = {url for url, code in answers.items() if code == 409}
    assert ambiguous == {
        f"{BASE}/patients/{SHARED}",
        f"{BASE}/patients/{SHARED}/events",
        f"/trials/{TRIAL}/patients/{SHARED}",
    }
    assert {
        url: code for url, code in answers.items() if url not in ambiguous and code != 200
    } == {}

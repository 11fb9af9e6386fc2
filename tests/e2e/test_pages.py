"""What safety officers, auditors and statisticians see, checked in a real browser against the API."""

from __future__ import annotations

import asyncio
import datetime as dt
import re
from pathlib import Path
from typing import Any

import httpx
import pytest

from services.api.report import run_report
from services.client.site import SiteClient
from services.ledger.connection import connect
from tests.e2e.conftest import Tab
from tests.integration.helpers import event

# In the loop of the package's system and browser (tests/e2e/conftest.py).
pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="package")]


def months(value: float | None) -> str:
    return "NE" if value is None else f"{value:.1f}"


async def shot(tab: Tab, artifacts: Path, name: str) -> None:
    await tab.page.screenshot(path=str(artifacts / f"{name}.png"), full_page=True)


async def patient_with_status(api: httpx.AsyncClient, trial: str, *statuses: str) -> dict[str, Any]:
    patients = (await api.get(f"/api/trials/{trial}/patients")).raise_for_status().json()
    for status in statuses:
        for row in patients:
            if row["status"] == status:
                return dict(row)
    pytest.fail(f"the simulated trial has no patient with status in {statuses}")


async def patient_with_uncorrected_last_scan(
    api: httpx.AsyncClient, trial: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    """A living patient whose latest scan, as recorded, is what the patient state shows."""
    patients = (await api.get(f"/api/trials/{trial}/patients")).json()
    for patient in patients:
        if (
            patient["status"] not in ("follow_up", "on_treatment", "off_treatment")
            or not patient["last_scan_on"]
        ):
            continue
        trail = (
            await api.get(f"/api/trials/{trial}/patients/{patient['patient_id']}/events")
        ).json()
        for row in trail:
            if (row["type"], row["status"], row["occurred_on"]) == (
                "scan_read",
                "effective",
                patient["last_scan_on"],
            ):
                return dict(patient), dict(row)
    pytest.fail("no living patient with an uncorrected last scan in the simulated trial")


async def submit(system: Any, trial: str, site: str, body: dict[str, Any]) -> dict[str, Any]:
    nc = await connect(
        system.settings.nats_url, system.settings.creds_for(f"site:{site}"), name=f"e2e-{site}"
    )
    try:
        reply = await SiteClient(nc, trial, site).submit(body)
    finally:
        await nc.close()
    assert reply["status"] == "accepted", reply
    return dict(reply)


async def test_every_page_loads_without_console_errors(
    tab: Tab,
    api: httpx.AsyncClient,
    trial: str,
    artifacts: Path,
) -> None:
    some = await patient_with_status(api, trial, "dead", "follow_up", "on_treatment")
    pages = {
        "overview": f"/trials/{trial}",
        "home": "/",
        "endpoints": f"/trials/{trial}/endpoints",
        "safety": f"/trials/{trial}/safety",
        "patients": f"/trials/{trial}/patients",
        "patient": f"/trials/{trial}/patients/{some['patient_id']}",
    }
    for name, path in pages.items():
        response = await tab.page.goto(path)
        assert response is not None and response.status == 200, (name, response and response.status)
        await tab.page.wait_for_load_state("load")
        await shot(tab, artifacts, f"page-{name}")
    trail = (await api.get(f"/api/trials/{trial}/patients/{some['patient_id']}/events")).json()
    assert await tab.page.locator("#audit-trail tr.audit").evaluate_all(
        "rows => rows.map(r => +r.dataset.seq)"
    ) == [row["seq"] for row in trail]
    assert tab.errors == []


async def test_the_overview_counts_every_patient_the_api_lists(
    tab: Tab, api: httpx.AsyncClient, trial: str
) -> None:
    patients = (await api.get(f"/api/trials/{trial}/patients")).json()
    await tab.page.goto(f"/trials/{trial}")
    assert await tab.page.text_content("#patients-total") == str(len(patients))
    drawn = await tab.page.get_attribute(
        '#enrollment-plot path[data-site="all sites"]', "data-count"
    )
    assert drawn == str(sum(1 for p in patients if p["enrolled_on"]))


async def test_the_km_medians_shown_are_the_apis(
    tab: Tab, api: httpx.AsyncClient, trial: str
) -> None:
    summary = (await api.get(f"/api/trials/{trial}/endpoints")).raise_for_status().json()
    await tab.page.goto(f"/trials/{trial}/endpoints")
    for item in summary["endpoints"]:
        cell = tab.page.locator(f'#median-table tr[data-paramcd="{item["paramcd"]}"] td.median')
        lower, upper = item["median_ci_months"]
        assert (
            await cell.text_content() or ""
        ).strip() == f"{months(item['median_months'])} [{months(lower)}, {months(upper)}]"
        shown = await cell.get_attribute("data-median-days")
        assert (float(shown) if shown else None) == item["median_days"]
    assert tab.errors == []


async def test_each_km_curve_drawn_steps_exactly_through_the_apis_curve(
    tab: Tab,
    api: httpx.AsyncClient,
    trial: str,
) -> None:
    await tab.page.goto(f"/trials/{trial}/endpoints")
    summary = (await api.get(f"/api/trials/{trial}/endpoints")).json()
    for item in summary["endpoints"]:
        detail = (await api.get(f"/api/trials/{trial}/endpoints/{item['paramcd']}")).json()
        drawn = await tab.page.eval_on_selector_all(
            f"#km-{item['paramcd']} circle.km-point",
            "points => points.map(p => [p.dataset.time, p.dataset.surv, p.dataset.nRisk])",
        )
        assert [(float(t), float(s), int(n)) for t, s, n in drawn] == [
            (row["time"], row["surv"], row["n_risk"]) for row in detail["curve"]
        ], item["paramcd"]
        at_risk = await tab.page.eval_on_selector_all(
            f'table.at-risk[data-paramcd="{item["paramcd"]}"] td[data-months]',
            "cells => cells.map(c => c.textContent)",
        )
        assert [int(n) for n in at_risk] == [row["n"] for row in detail["at_risk"]]


async def test_the_waterfall_draws_each_patients_best_change_from_the_api(
    tab: Tab,
    api: httpx.AsyncClient,
    trial: str,
) -> None:
    responses = (await api.get(f"/api/trials/{trial}/responses")).json()
    await tab.page.goto(f"/trials/{trial}/endpoints")
    expected = {
        f"{r['site_id']}/{r['patient_id']}": r["best_pct_change"]
        for r in responses
        if r["criterion"] == "RECIST 1.1" and r["measurable"] and r["best_pct_change"] is not None
    }
    drawn = await tab.page.eval_on_selector_all(
        '.waterfall-figure[data-criterion="RECIST 1.1"] rect.waterfall-bar',
        "bars => bars.map(b => [b.dataset.patient, b.dataset.pct])",
    )
    assert {patient: float(pct) for patient, pct in drawn} == expected
    assert [float(pct) for _, pct in drawn] == sorted(expected.values(), reverse=True)


async def test_a_serious_ae_submitted_now_appears_on_the_open_safety_page_without_a_reload(
    tab: Tab,
    system: Any,
    api: httpx.AsyncClient,
    trial: str,
    artifacts: Path,
) -> None:
    assert "alerter" in system.services, (
        "the SAE alerter (services.alerter) is not part of the system"
    )
    await tab.page.goto(f"/trials/{trial}/safety")
    await tab.page.wait_for_function(
        "document.getElementById('stream-state').textContent === 'live'", timeout=10_000
    )
    patient = await patient_with_status(api, trial, "on_treatment", "off_treatment", "follow_up")
    site = patient["site_id"]
    now = dt.datetime.now(dt.UTC)
    ae = event(
        "ae_reported",
        trial,
        site_id=site,
        patient_id=patient["patient_id"],
        occurred_on=now.date().isoformat(),
        recorded_by=f"{site}.pi",
        data={
            "term": "Hypertension",
            "grade": 3,
            "serious": True,
            "seriousness": ["hospitalisation"],
            "site_aware_at": now.isoformat(timespec="seconds").replace("+00:00", "Z"),
        },
    )
    rows_before = await tab.page.locator("#sae-alerts tbody tr").count()
    await tab.page.evaluate("window.sameDocument = true")  # a reload would forget it
    await submit(system, trial, site, ae)
    # The page must show it without a reload; how fast is measured by `make bench`, not asserted here.
    await tab.page.wait_for_selector(
        f'#sae-alerts tr[data-alert-id="sae-{ae["event_id"]}"]', timeout=30_000
    )
    assert await tab.page.locator("#sae-alerts tbody tr").count() == rows_before + 1
    assert await tab.page.evaluate("window.sameDocument") is True
    await shot(tab, artifacts, "page-safety-live-alert")
    assert tab.errors == []


async def test_the_as_of_selector_brings_a_corrected_scan_date_back_to_its_old_value(
    tab: Tab,
    system: Any,
    api: httpx.AsyncClient,
    trial: str,
    artifacts: Path,
) -> None:
    patient, last = await patient_with_uncorrected_last_scan(api, trial)
    pid, site = patient["patient_id"], patient["site_id"]
    trail = (await api.get(f"/api/trials/{trial}/patients/{pid}/events")).json()
    old_date = dt.date.fromisoformat(last["occurred_on"])
    await asyncio.sleep(0.3)
    before_correction = (
        dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    )
    await asyncio.sleep(0.3)
    new_date = old_date - dt.timedelta(days=1)
    correction = event(
        "event_corrected",
        trial,
        site_id=site,
        patient_id=pid,
        recorded_by=f"{site}.monitor",
        occurred_on=dt.date.today().isoformat(),
        reason="scan date mistyped",
        data={
            "target_event_id": last["event_id"],
            "occurred_on": new_date.isoformat(),
            "data": last["event"]["data"],
        },
    )
    await submit(system, trial, site, correction)
    await system.services["projector"].wait_caught_up(60)

    await tab.page.goto(f"/trials/{trial}/patients/{pid}")
    assert await tab.page.text_content('td[data-field="last_scan_on"]') == new_date.isoformat()
    change = tab.page.locator('#audit-trail tr[data-field="occurred_on"]').last
    assert await change.locator(".old").text_content() == old_date.isoformat()
    assert await change.locator(".new-value").text_content() == new_date.isoformat()

    await tab.page.fill("#as-of", before_correction)
    async with tab.page.expect_navigation(timeout=90_000):
        await tab.page.click("#as-of-apply")
    # the past view is built aside: a "being prepared" page refreshes itself until it is ready
    await tab.page.wait_for_selector('td[data-field="last_scan_on"]', timeout=90_000)
    shown = await tab.page.get_attribute("#as-of-banner", "data-as-of") or ""
    assert dt.datetime.fromisoformat(shown.replace("Z", "+00:00")) == dt.datetime.fromisoformat(
        before_correction.replace("Z", "+00:00")
    )
    assert await tab.page.text_content('td[data-field="last_scan_on"]') == old_date.isoformat()
    assert await tab.page.locator("#audit-trail tr.audit").count() == len(trail)
    await shot(tab, artifacts, "page-patient-as-of")
    assert tab.errors == []


async def test_the_report_is_one_self_contained_file_stamped_with_the_ledger_position(
    browser: Any,
    system: Any,
    api: httpx.AsyncClient,
    trial: str,
    artifacts: Path,
) -> None:
    out = artifacts / "report.html"
    await system.services["projector"].wait_caught_up(60)
    for _ in range(
        3
    ):  # the writer may seal the ledger meanwhile: stamp and position must be read together
        position = (await api.get(f"/api/trials/{trial}/position")).json()
        assert (
            await run_report(system.settings, trial=trial, as_of=None, out=out, console=_quiet())
            == 0
        )
        if (await api.get(f"/api/trials/{trial}/position")).json() == position:
            break
    html = out.read_text(encoding="utf-8")
    assert "<script" not in html and 'rel="stylesheet"' not in html and "src=" not in html
    context = await browser.new_context(viewport={"width": 1280, "height": 900}, offline=True)
    tab = Tab(await context.new_page()).listen()
    try:
        await tab.page.goto(out.as_uri())
        stamp = tab.page.locator("#report-stamp")
        assert await stamp.get_attribute("data-ledger-seq") == str(position["ledger_seq"])
        assert await stamp.get_attribute("data-ledger-hash") == position["ledger_hash"]
        assert await stamp.get_attribute("data-parameters-version") == str(
            position["parameters_version"]
        )
        curve = (await api.get(f"/api/trials/{trial}/endpoints/OS")).json()["curve"]
        drawn = await tab.page.eval_on_selector_all(
            "#km-OS circle.km-point", "points => points.map(p => [p.dataset.time, p.dataset.surv])"
        )
        assert [(float(t), float(s)) for t, s in drawn] == [(r["time"], r["surv"]) for r in curve]
        await tab.page.screenshot(path=str(artifacts / "report.png"), full_page=True)
        assert tab.errors == []
    finally:
        await context.close()


def _quiet() -> Any:
    import io

    from rich.console import Console

    return Console(file=io.StringIO())


async def test_a_site_token_given_once_signs_in_and_shows_only_that_sites_patients(
    system: Any, trial: str
) -> None:
    token = system.runtime["api_tokens"]["site:site01"]
    async with httpx.AsyncClient(base_url=system.runtime["api_url"], timeout=60) as browser_like:
        refused = await browser_like.get(f"/trials/{trial}/patients")
        assert refused.status_code == 401 and 'name="token"' in refused.text
        signed_in = await browser_like.get(f"/trials/{trial}/patients?token={token}")
        assert signed_in.status_code == 303 and "token" not in signed_in.headers["location"]
        listing = await browser_like.get(signed_in.headers["location"])
    assert listing.status_code == 200
    sites = set(re.findall(r'data-site="([^"]+)"', listing.text))
    assert sites == {"site01"}

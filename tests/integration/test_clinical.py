"""Clinical endpoints on real servers: summaries agree with Kaplan–Meier on the API's own
ADTTE rows, exports are ADaM-shaped, a site sees its own patients, a corrected scan read
changes the endpoints at the next pass while the audit trail keeps the old values, and the
live clinical tables equal a fresh replay."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from rich.console import Console

from projections.endpoints.adam import ADAE_COLUMNS, ADRS_COLUMNS, ADSL_COLUMNS, ADTTE_COLUMNS
from projections.endpoints.patient_endpoints import PARAMCDS
from projections.statistics.km import kaplan_meier, median
from services.api.app import create_app as create_api
from services.cli.exports import run_export
from services.client.site import SiteClient
from services.config.settings import Settings
from services.ledger.connection import connect
from services.projector.app import ProjectorApp
from tests.integration.helpers import event, parameters, unique_trial
from tests.integration.test_projections import assert_live_equals_replay, ingest

pytestmark = pytest.mark.integration

TOKENS = {"admin": "admin-token", "site:site01": "site01-token"}
SIMULATED = "HAIC-PD1-LEN"


@pytest.fixture
async def api(servers: Settings, projector: ProjectorApp) -> AsyncIterator[httpx.AsyncClient]:
    app = create_api(servers, tokens=TOKENS)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport,
            base_url="http://api",
            headers={"Authorization": "Bearer admin-token"},
        ) as client:
            yield client


def parse_csv(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


async def test_simulated_trial_endpoints_exports_site_view_and_replay(
    servers: Settings,
    projector: ProjectorApp,
    api: httpx.AsyncClient,
    tmp_path: Path,
) -> None:
    await ingest(servers, patients=24, seed=3)
    await projector.wait_caught_up(120)

    summary = (await api.get(f"/api/trials/{SIMULATED}/endpoints")).raise_for_status().json()
    assert [item["paramcd"] for item in summary["endpoints"]] == list(PARAMCDS)
    assert summary["conf_type"] == "log-log"
    os_summary = summary["endpoints"][0]
    assert 0 < os_summary["n"] <= 24
    for item in summary["endpoints"]:
        assert item["at_seq"] == summary["at_seq"] and item["parameters_version"] == 1
        assert [lm["months"] for lm in item["landmarks"]] == [6, 12, 24]
        detail = (
            (await api.get(f"/api/trials/{SIMULATED}/endpoints/{item['paramcd']}"))
            .raise_for_status()
            .json()
        )
        assert len(detail["rows"]) == item["n"]
        if not detail["rows"]:
            continue
        fit = kaplan_meier(
            [r["aval"] for r in detail["rows"]], [r["cnsr"] == 0 for r in detail["rows"]], "log-log"
        )
        estimate, lower, upper = median(fit)
        assert (item["median_days"], item["median_ci_days"]) == (estimate, [lower, upper])
        assert item["events"] == fit.n_events
        assert detail["at_risk"][0] == {"months": 0, "n": item["n"]}
    assert all(
        item["paramcd"] != "PFSPVTT" or item["n"] <= os_summary["n"]
        for item in summary["endpoints"]
    )
    orr = {(rate["criterion"], rate["confirmed"]): rate for rate in summary["orr"]}
    assert set(orr) == {(c, k) for c in ("RECIST 1.1", "mRECIST", "PVTT") for k in (True, False)}
    for (criterion, _), rate in orr.items():
        dcr = next(
            d
            for d in summary["dcr"]
            if d["criterion"] == criterion and d["confirmed"] == rate["confirmed"]
        )
        assert rate["responders"] <= dcr["responders"] <= rate["n"] == dcr["n"]
        assert orr[(criterion, True)]["responders"] <= orr[(criterion, False)]["responders"]
    by_log = (
        await api.get(f"/api/trials/{SIMULATED}/endpoints", params={"conf_type": "log"})
    ).json()
    assert by_log["conf_type"] == "log"
    assert by_log["endpoints"][0]["median_ci_days"] == os_summary["median_ci_by_conf_type"]["log"]
    assert (
        await api.get(f"/api/trials/{SIMULATED}/endpoints", params={"conf_type": "arcsin"})
    ).status_code == 400

    exports = {}
    for dataset, columns in (
        ("adsl", ADSL_COLUMNS),
        ("adtte", ADTTE_COLUMNS),
        ("adrs", ADRS_COLUMNS),
        ("adae", ADAE_COLUMNS),
    ):
        response = (
            await api.get(f"/api/trials/{SIMULATED}/export/{dataset}.csv")
        ).raise_for_status()
        assert response.headers["content-type"].startswith("text/csv")
        assert next(csv.reader(io.StringIO(response.text))) == list(columns)
        exports[dataset] = parse_csv(response.text)
    assert len(exports["adsl"]) == 24
    assert len(exports["adtte"]) == sum(item["n"] for item in summary["endpoints"])
    assert {row["PARAMCD"] for row in exports["adrs"]} == {"OVR", "BOR", "CBOR"}
    assert {row["USUBJID"] for row in exports["adae"]} <= {
        row["USUBJID"] for row in exports["adsl"]
    }

    site = {"Authorization": "Bearer site01-token"}
    everyone = (await api.get(f"/api/trials/{SIMULATED}/responses")).raise_for_status().json()
    own = (
        (await api.get(f"/api/trials/{SIMULATED}/responses", headers=site))
        .raise_for_status()
        .json()
    )
    assert own and {row["site_id"] for row in own} == {"site01"}
    assert len(own) < len(everyone)
    own_adsl = parse_csv(
        (await api.get(f"/api/trials/{SIMULATED}/export/adsl.csv", headers=site)).text
    )
    assert {row["SITEID"] for row in own_adsl} == {"site01"}
    other = next(row for row in everyone if row["site_id"] != "site01")
    assert (
        await api.get(f"/api/trials/{SIMULATED}/patients/{other['patient_id']}", headers=site)
    ).status_code == 404
    mine = (
        await api.get(f"/api/trials/{SIMULATED}/patients/{own[0]['patient_id']}", headers=site)
    ).json()
    assert {"responses", "endpoints"} <= set(mine)

    written = tmp_path / "adtte.csv"
    assert (
        await run_export(
            servers, "adtte", trial=SIMULATED, out=written, console=Console(quiet=True)
        )
        == 0
    )
    assert (
        written.read_bytes().decode()
        == (await api.get(f"/api/trials/{SIMULATED}/export/adtte.csv")).text
    )

    await projector.stop()
    live = await assert_live_equals_replay(servers)
    assert live["adtte"]["rows"] == len(exports["adtte"])
    assert live["clinical_patient"]["rows"] == 24


def _lesions(t1: float) -> list[dict[str, Any]]:
    """One liver target measured whole (RECIST 1.1) and viable (mRECIST) alike."""
    return [
        {
            "lesion_id": "T1",
            "location": "intrahepatic",
            "organ": "liver",
            "role": "target",
            "longest_diameter_mm": t1,
            "viable_diameter_mm": t1,
        }
    ]


def _scan(trial: str, on: str, timepoint: str, t1: float) -> dict[str, Any]:
    return event(
        "scan_read",
        trial,
        occurred_on=on,
        data={
            "timepoint": timepoint,
            "lesions": _lesions(t1),
            "pvtt": None,
            "reader_calls": {"recist": "PD" if t1 > 40 else "SD"},
        },
    )


async def test_corrected_scan_read_changes_pfs_and_best_response_and_the_trail_keeps_the_old_value(
    servers: Settings,
    projector: ProjectorApp,
    api: httpx.AsyncClient,
) -> None:
    # Baseline 40 mm, week 6 30 mm (−25 %: SD), week 12 50 mm (+67 % over the 30 mm nadir: PD).
    # The week-12 read is then corrected to 20 mm: −50 % from baseline, PR (unconfirmed).
    nc = await connect(servers.nats_url or "")
    trial = unique_trial()
    site = SiteClient(nc, trial, "site01")
    try:
        assert (await SiteClient(nc, trial, "_sponsor").submit(parameters(trial)))[
            "status"
        ] == "accepted"
        enrolled = event("enrolled", trial, data={"baseline_pvtt": False, "baseline_pvtt_vp": None})
        week12 = _scan(trial, "2025-04-30", "follow_up", 50.0)
        for submitted in (
            enrolled,
            _scan(trial, "2025-01-28", "baseline", 40.0),
            event("infusion_given", trial, occurred_on="2025-02-05"),
            _scan(trial, "2025-03-19", "follow_up", 30.0),
            week12,
        ):
            reply = await site.submit(submitted)
            assert reply["status"] == "accepted", reply
        await projector.wait_caught_up(60)
        before = await _patient_view(api, trial)
        assert before["pfs"]["cnsr"] == 0 and before["pfs"]["adt"] == "2025-04-30"
        assert before["pfs"]["aval"] == 85  # 5 Feb → 30 Apr 2025, counting 5 Feb as day 1
        assert (before["recist"]["bor"], before["recist"]["cbor"]) == ("SD", "SD")
        assert before["recist"]["timepoints"][-1]["overall"] == "PD"

        correction = event(
            "event_corrected",
            trial,
            occurred_on="2025-04-30",
            reason="T1 transcribed from the wrong series",
            recorded_by="site01.radiologist",
            data={
                "target_event_id": week12["event_id"],
                "data": {**week12["data"], "lesions": _lesions(20.0)},
            },
        )
        reply = await site.submit(correction)
        assert reply["status"] == "accepted", reply
        await projector.wait_caught_up(60)
        after = await _patient_view(api, trial)
        assert after["pfs"]["cnsr"] == 1 and after["pfs"]["adt"] == "2025-04-30"
        assert after["pfs"]["srcseqs"] == [week12_seq(before), reply["seq"]]
        assert (after["recist"]["bor"], after["recist"]["cbor"]) == ("PR", "SD")
        last = after["recist"]["timepoints"][-1]
        assert (last["overall"], last["reader_call"], last["disagrees"]) == ("PR", "PD", True)

        trail = (
            (await api.get(f"/api/trials/{trial}/patients/P0001/events")).raise_for_status().json()
        )
        corrected = next(row for row in trail if row["event_id"] == week12["event_id"])
        assert corrected["status"] == "corrected"
        amendment = next(row for row in trail if row["seq"] == reply["seq"])
        changes = {c["field"]: (c["old"], c["new"]) for c in amendment["changes"]}
        assert changes["data.lesions[0].longest_diameter_mm"] == (50.0, 20.0)
        assert amendment["reason"] == "T1 transcribed from the wrong series"
    finally:
        await nc.close()


def week12_seq(view: dict[str, Any]) -> int:
    return int(view["recist"]["timepoints"][-1]["seq"])


async def _patient_view(api: httpx.AsyncClient, trial: str) -> dict[str, Any]:
    body = (await api.get(f"/api/trials/{trial}/patients/P0001")).raise_for_status().json()
    return {
        "pfs": next(e for e in body["endpoints"] if e["paramcd"] == "PFSRECIST"),
        "recist": next(r for r in body["responses"] if r["criterion"] == "RECIST 1.1"),
    }

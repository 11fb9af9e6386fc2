"""Issue 14 items 21 and 24 through real servers: a baseline scan the intake accepts inside
the screening window is the baseline the engine uses, its flags reach the intake reply, the
responses and patient JSON, the patient page and the exports; a timepoint after the data
cut-off is shown and exported as not analysed."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from services.client.site import SiteClient
from services.config.settings import Settings
from services.ledger.connection import connect
from services.projector.app import ProjectorApp
from tests.integration.helpers import event, unique_trial
from tests.integration.test_clinical import (  # noqa: F401 — api is a fixture
    api,
    parse_csv,
)

pytestmark = pytest.mark.integration


def _target(lesion_id: str, mm: float, organ: str = "liver") -> dict[str, Any]:
    return {
        "lesion_id": lesion_id,
        "location": "intrahepatic" if organ == "liver" else "extrahepatic",
        "organ": organ,
        "role": "target",
        "longest_diameter_mm": mm,
        "viable_diameter_mm": mm,
    }


def _scan(trial: str, on: str, timepoint: str, t1: float) -> dict[str, Any]:
    lesions = [_target("T1", t1), _target("T2", 8.0, "lung")]
    data = {"timepoint": timepoint, "lesions": lesions, "pvtt": None, "reader_calls": {}}
    return event("scan_read", trial, occurred_on=on, data=data)


async def test_baseline_before_enrollment_with_a_late_first_dose_and_a_cutoff_through_the_api(
    servers: Settings,
    projector: ProjectorApp,
    api: httpx.AsyncClient,
) -> None:
    # Baseline CT 20 Dec 2024 (21 days before enrollment on 10 Jan 2025): T1 40 mm in the
    # liver, T2 8 mm in the lung (not measurable). First HAIC 1 Feb 2025, 43 days after the
    # scan. T1 20 mm on 15 Mar (day 43): sum 48 → 28 mm, −41.7 %, PR. Cut-off 1 Apr: the PR
    # read of 20 Apr is not analysed, so the PR stays unconfirmed (confirmed BOR SD).
    nc = await connect(servers.nats_url or "")
    trial = unique_trial()
    site = SiteClient(nc, trial, "site01")
    knobs = {"sites": ["site01"], "data_cutoff": "2025-04-01"}
    try:
        setup = event("protocol_parameters_set", trial, data={"version": 1, "parameters": knobs})
        assert (await SiteClient(nc, trial, "_sponsor").submit(setup))["status"] == "accepted"
        enrolled = event(
            "enrolled",
            trial,
            occurred_on="2025-01-10",
            data={"baseline_pvtt": False, "baseline_pvtt_vp": None},
        )
        assert (await site.submit(enrolled))["status"] == "accepted"
        reply = await site.submit(_scan(trial, "2024-12-20", "baseline", 40.0))
        assert reply["status"] == "accepted", reply
        assert {
            "field": "data.lesions",
            "message": (
                "RECIST 1.1 and mRECIST: target T2 is not measurable at baseline (< 10 mm, node < 15 mm)"
            ),
        } in reply["warnings"]
        for submitted in (
            event("infusion_given", trial, occurred_on="2025-02-01"),
            _scan(trial, "2025-03-15", "follow_up", 20.0),
            _scan(trial, "2025-04-20", "follow_up", 20.0),
        ):
            reply = await site.submit(submitted)
            assert reply["status"] == "accepted", reply
            assert "warnings" not in reply
        await projector.wait_caught_up(60)

        body = (await api.get(f"/api/trials/{trial}/patients/P0001")).raise_for_status().json()
        recist = next(r for r in body["responses"] if r["criterion"] == "RECIST 1.1")
        assert (recist["measurable"], recist["bor"], recist["cbor"]) == (True, "PR", "SD")
        assert recist["baseline_flags"] == ["target_not_measurable:T2"]
        assert [
            (t["occurred_on"], t["analysed"], t["not_analysed_because"])
            for t in recist["timepoints"]
        ] == [
            ("2025-03-15", True, None),
            ("2025-04-20", False, "after_data_cutoff"),
        ]
        listed = (await api.get(f"/api/trials/{trial}/responses")).raise_for_status().json()
        assert listed[0]["baseline_notes"] == recist["baseline_notes"] != []

        page = (await api.get(f"/trials/{trial}/patients/P0001")).raise_for_status().text
        assert "target T2 is not measurable at baseline" in page
        assert "no: after data cutoff" in page

        adsl = parse_csv((await api.get(f"/api/trials/{trial}/export/adsl.csv")).text)
        assert (adsl[0]["MEASRFL"], adsl[0]["BLFLGR"]) == ("Y", "target_not_measurable:T2")
        adrs = parse_csv((await api.get(f"/api/trials/{trial}/export/adrs.csv")).text)
        ovr = [
            (row["ADT"], row["ANL01FL"], row["ANL01RSN"])
            for row in adrs
            if row["PARAMCD"] == "OVR" and row["PARCAT3"] == "RECIST 1.1"
        ]
        assert ovr == [("2025-03-15", "Y", ""), ("2025-04-20", "N", "after_data_cutoff")]
    finally:
        await nc.close()

"""The alerter's decision and the safety officer's follower, without servers."""

from __future__ import annotations

import copy
import datetime as dt
import io
import uuid
from typing import Any

import pytest
from rich.console import Console

from events import ProtocolParameters, decode
from events.examples import EXAMPLES
from projections.fold.history import Recorded
from services.alerter.decisions import (
    KnownAlerts,
    TrialParameters,
    alerts_due,
    new_alerts,
    touched_aes,
)
from services.client.follow import Follower, acknowledgement

pytestmark = pytest.mark.unit

DEFAULTS = ProtocolParameters()


def recorded(
    seq: int, kind: str, recorded_at: str = "2025-02-21T08:00:00Z", **changes: Any
) -> Recorded:
    raw = copy.deepcopy(EXAMPLES[kind])
    raw["event_id"] = changes.pop("event_id", str(uuid.uuid4()))
    raw["data"] = {**raw["data"], **changes.pop("data", {})}
    raw.update(changes, recorded_at=recorded_at)
    return Recorded(seq, decode(raw))


def enrolled() -> Recorded:
    return recorded(1, "enrolled", "2025-02-03T10:00:00Z")


def test_a_serious_unexpected_related_report_calls_for_one_alert_with_a_15_day_clock() -> None:
    report = recorded(
        2, "ae_reported", data={"expected": False}
    )  # hospitalisation, lenvatinib probable
    [alert] = alerts_due([enrolled(), report], DEFAULTS)
    assert alert.alert_id == f"sae-{report.event.event_id}"
    assert (alert.term, alert.grade, alert.seriousness) == ("Hypertension", 3, ("hospitalisation",))
    body = alert.message(dt.datetime(2025, 2, 21, 8, 0, 1, tzinfo=dt.UTC))
    assert body["seq"] == 2 and body["trigger_seq"] == 2
    assert body["expedited_days"] == 15 and body["report_due"] == "2025-03-08"
    # site aware 2025-02-20 09:30, entered 2025-02-21 08:00: within 24 h
    assert body["late_entry"] is False
    assert body["raised_at"] == "2025-02-21T08:00:01Z"


def test_a_serious_but_expected_ae_is_alerted_without_an_expedited_clock() -> None:
    [alert] = alerts_due([enrolled(), recorded(2, "ae_reported")], DEFAULTS)
    body = alert.message(dt.datetime(2025, 2, 21, tzinfo=dt.UTC))
    assert (body["susar"], body["expedited_days"], body["report_due"]) == (False, None, None)


def test_a_non_serious_grade_2_ae_calls_for_no_alert() -> None:
    mild = recorded(2, "ae_reported", data={"grade": 2, "serious": False, "seriousness": []})
    assert alerts_due([enrolled(), mild], DEFAULTS) == ()


def test_an_update_raising_the_grade_to_4_raises_the_alert_named_after_the_update_with_7_days() -> (
    None
):
    mild = recorded(
        2, "ae_reported", data={"grade": 2, "serious": False, "seriousness": [], "expected": False}
    )
    worse = recorded(
        3,
        "ae_updated",
        "2025-02-25T12:00:00Z",
        data={"ae_event_id": str(mild.event.event_id), "grade": 4},
    )
    [alert] = alerts_due([enrolled(), mild, worse], DEFAULTS)
    assert alert.alert_id == f"sae-{worse.event.event_id}"
    body = alert.message(dt.datetime(2025, 2, 25, 12, tzinfo=dt.UTC))
    assert (body["seq"], body["trigger_seq"], body["grade"]) == (2, 3, 4)
    assert "life_threatening" in body["seriousness"]
    assert body["expedited_days"] == 7 and body["report_due"] == "2025-03-04"


def test_an_alert_already_in_alerts_is_not_sent_again_even_under_another_alert_id() -> None:
    report = recorded(2, "ae_reported")
    due = alerts_due([enrolled(), report], DEFAULTS)
    by_ae = KnownAlerts()
    by_ae.add("sae-00000000-0000-4000-8000-000000000099", str(report.event.event_id).upper())
    by_id = KnownAlerts()
    by_id.add(due[0].alert_id, None)
    assert new_alerts(due, KnownAlerts()) == due
    assert new_alerts(due, by_ae) == ()
    assert new_alerts(due, by_id) == ()


def test_an_entry_is_judged_by_the_parameters_in_force_at_its_seq() -> None:
    parameters = TrialParameters()
    strict = ProtocolParameters(late_entry_hours=12)
    parameters.learn("T", 10, DEFAULTS)
    parameters.learn("T", 50, strict)
    assert parameters.at("T", 9) == DEFAULTS  # before any version: the DOMAIN.md defaults
    assert parameters.at("T", 49) == DEFAULTS
    assert parameters.at("T", 50) == strict
    assert parameters.at("other", 100) == DEFAULTS


ALERT = {
    "alert_id": "sae-00000000-0000-4000-8000-000000000006",
    "trial_id": "HAIC-PD1-LEN",
    "site_id": "site01",
    "patient_id": "P0001",
    "ae_event_id": "00000000-0000-4000-8000-000000000006",
    "seq": 6,
    "term": "Hypertension",
    "grade": 3,
    "seriousness": ["hospitalisation"],
    "susar": True,
    "expedited_days": 15,
    "report_due": "2025-03-08",
    "late_entry": True,
    "raised_at": "2025-02-21T08:00:01Z",
}


def test_the_acknowledgement_names_the_patient_and_alert_and_is_the_same_event_when_retried() -> (
    None
):
    first = acknowledgement(ALERT, "sponsor.safety_officer", dt.date(2025, 2, 21))
    again = acknowledgement(ALERT, "sponsor.safety_officer", dt.date(2025, 2, 22))
    other_officer = acknowledgement(ALERT, "sponsor.deputy", dt.date(2025, 2, 21))
    assert decode(first).event_type == "sae_acknowledged"
    assert (first["site_id"], first["patient_id"], first["recorded_by"]) == (
        "site01",
        "P0001",
        "sponsor.safety_officer",
    )
    assert first["data"] == {"alert_id": ALERT["alert_id"], "ae_event_id": ALERT["ae_event_id"]}
    assert first["event_id"] == again["event_id"] != other_officer["event_id"]


async def test_the_follower_prints_each_alert_and_acknowledges_it_through_the_safety_intake() -> (
    None
):
    sent: list[tuple[str, dict[str, Any]]] = []

    async def submit(trial_id: str, event: dict[str, Any]) -> dict[str, Any]:
        sent.append((trial_id, event))
        return {"event_id": event["event_id"], "status": "accepted", "seq": 42}

    out = io.StringIO()
    follower = Follower(
        Console(file=out, width=300),
        "sponsor.safety_officer",
        submit,
        today=lambda: dt.date(2025, 2, 21),
    )
    await follower(ALERT)
    printed = out.getvalue()
    assert "sae-00000000-0000-4000-8000-000000000006" in printed and "LATE ENTRY" in printed
    assert "SUSAR" in printed and "2025-03-08" in printed and "ledger seq 42" in printed
    assert [trial for trial, _ in sent] == ["HAIC-PD1-LEN"]
    assert follower.seen == [ALERT]


async def test_a_refused_acknowledgement_leaves_the_alert_unseen() -> None:
    async def refuse(trial_id: str, event: dict[str, Any]) -> dict[str, Any]:
        return {
            "status": "rejected",
            "errors": [{"field": "data.ae_event_id", "message": "no adverse event"}],
        }

    follower = Follower(Console(file=io.StringIO()), "sponsor.safety_officer", refuse)
    with pytest.raises(RuntimeError, match="refused"):
        await follower(ALERT)
    assert follower.seen == []


def test_an_update_is_decided_on_its_own_ae_alone_and_a_correction_on_every_ae() -> None:
    serious = recorded(2, "ae_reported")
    mild = recorded(3, "ae_reported", data={"grade": 2, "serious": False, "seriousness": []})
    worse = recorded(4, "ae_updated", data={"ae_event_id": str(mild.event.event_id), "grade": 4})
    correction = recorded(
        5,
        "event_corrected",
        reason="grade mistyped",
        data={
            "target_event_id": str(worse.event.event_id),
            "data": {"ae_event_id": str(mild.event.event_id), "grade": 3},
        },
    )
    history = [enrolled(), serious, mild, worse]
    [only_mild] = alerts_due(history, DEFAULTS, touched_aes(worse.event))
    assert only_mild.ae_event_id == str(mild.event.event_id)
    assert touched_aes(correction.event) is None
    # corrected back to grade 3, the second AE is no longer serious — but its alert was
    # raised and stays raised: the correction calls for nothing new
    assert alerts_due([*history, correction], DEFAULTS, None) == alerts_due(history, DEFAULTS, None)


def test_a_follow_up_is_shown_as_such_with_its_reasons_and_what_is_not_yet_assessed() -> None:
    from services.client.follow import describe

    line = describe(
        {
            **ALERT,
            "alert_id": f"{ALERT['alert_id']}-fu-9",
            "kind": "follow_up",
            "follows": ALERT["alert_id"],
            "reasons": ["became_life_threatening", "clock_shortened_to_7_days"],
            "expedited_days": 7,
            "report_due": None,
            "not_yet_assessed": ["expectedness"],
            "data_quality": ["site_aware_at_unusable"],
        }
    )
    assert (
        f"FOLLOW-UP (became_life_threatening, clock_shortened_to_7_days) of {ALERT['alert_id']}"
        in line
    )
    assert "due UNKNOWN (7 d)" in line
    assert "expectedness not yet assessed" in line and "site_aware_at_unusable" in line

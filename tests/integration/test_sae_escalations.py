"""SAE alert histories on real servers: every SAE alerted once and every escalation once, with
the alerter killed (SIGKILL) and restarted in the middle; SAEs with an unusable awareness
instant or no assessment yet alerted all the same; the writer accepts acknowledgements only
of alerts the ledger called for."""

from __future__ import annotations

import signal
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from events import decode
from projections.fold.history import Recorded
from services.alerter.app import AlerterApp
from services.alerter.app import create_app as create_alerter
from services.client.site import SiteClient
from services.config.settings import Settings
from services.ledger.connection import connect
from services.ledger.io import read_stream
from services.writer.app import WriterApp
from services.writer.intake import SAFETY_INTAKE
from tests.integration.helpers import event
from tests.integration.test_safety import (  # the fixtures are shared with test_safety
    _alerter_process,
    alerter,  # noqa: F401
    alerts_in_stream,
    enrolled_trial,
    nats_only,  # noqa: F401
    wait_alerter,
    writer,  # noqa: F401
)

pytestmark = pytest.mark.integration

SUSPECTED = {
    "expected": False,
    "attribution": {"haic": "unrelated", "pd1": "probable", "lenvatinib": "unrelated"},
}
ODD_AWARENESS = ("0001-01-01T00:00:00+05:00", "9999-12-31T23:00:00-05:00")


def hospitalised_susar(trial: str, patient: str, **data: Any) -> dict[str, Any]:
    return event(
        "ae_reported",
        trial,
        patient_id=patient,
        data={
            "term": "Hypertension",
            "grade": 3,
            "serious": True,
            "seriousness": ["hospitalisation"],
            **SUSPECTED,
            **data,
        },
    )


def grade_4(trial: str, patient: str, ae_event_id: str) -> dict[str, Any]:
    return event(
        "ae_updated",
        trial,
        patient_id=patient,
        data={"ae_event_id": ae_event_id, "grade": 4},
    )


def unassessed_life_threatening(trial: str, patient: str) -> dict[str, Any]:
    """A grade 4 pneumonitis reported before anyone assessed causality or expectedness."""
    raw = event("ae_reported", trial, patient_id=patient)
    raw["data"] = {"term": "Pneumonitis", "grade": 4}
    return raw


async def expected_alert_ids(settings: Settings, trial: str) -> Counter[str]:
    """What the ledger calls for, derived independently of the alerter."""
    from projections.safety.sae_alerts import alert_log  # the shared rule, as the writer uses it

    nc = await connect(settings.nats_url or "")
    try:
        by_patient: dict[tuple[str, str, str], list[Recorded]] = {}
        async for msg in read_stream(nc.jetstream(), f"ledger.{trial}.>"):
            decoded = decode(msg.json())
            if decoded.site_id != "_sponsor":
                by_patient.setdefault(decoded.patient_key, []).append(Recorded(msg.seq, decoded))
    finally:
        await nc.close()
    return Counter(
        alert.alert_id for history in by_patient.values() for alert in alert_log(history)
    )


@pytest.mark.fault
async def test_every_sae_and_every_escalation_is_alerted_exactly_once_across_alerter_kills(
    writer: WriterApp, nats_only: Settings, tmp_path: Path
) -> None:
    patients = [f"P{n:03d}" for n in range(24)]
    nc = await connect(nats_only.nats_url or "")
    process = _alerter_process(nats_only, tmp_path)
    kills = 0
    try:
        trial = await enrolled_trial(nc, patients)
        site = SiteClient(nc, trial, "site01")
        reports = {
            patient: hospitalised_susar(
                trial, patient, site_aware_at=ODD_AWARENESS[n % 2] if n % 4 == 0 else None
            )
            for n, patient in enumerate(patients)
        }
        unassessed = unassessed_life_threatening(trial, patients[1])
        for number, patient in enumerate(patients):
            assert (await site.submit(reports[patient]))["status"] in {"accepted", "rejected"}
            if number == 1:
                assert (await site.submit(unassessed))["status"] == "accepted"
            if number % 6 == 5:  # mid-stream: kill -9, start again
                process.send_signal(signal.SIGKILL)
                process.wait(10)
                kills += 1
                process = _alerter_process(nats_only, tmp_path)
        accepted = [
            patient
            for patient in patients
            if (await site.submit(reports[patient]))["status"] == "duplicate"
        ]
        for number, patient in enumerate(accepted):
            update = grade_4(trial, patient, reports[patient]["event_id"])
            assert (await site.submit(update))["status"] == "accepted"
            if number % 7 == 3:
                process.send_signal(signal.SIGKILL)
                process.wait(10)
                kills += 1
                process = _alerter_process(nats_only, tmp_path)
        await wait_alerter(nats_only, timeout=120)
    finally:
        process.terminate()
        process.wait(20)
        await nc.close()
    assert kills >= 5
    published = await alerts_in_stream(nats_only, trial)
    counted = Counter(alert["alert_id"] for alert in published)
    assert set(counted.values()) == {1}
    by_ae: dict[str, list[dict[str, Any]]] = {}
    for alert in published:
        by_ae.setdefault(alert["ae_event_id"], []).append(alert)
    # odd awareness instants: the intake may refuse them; whatever it accepted is alerted
    assert len(accepted) >= len(patients) - len(patients) // 4
    for patient in accepted:
        initial, follow_up = by_ae[reports[patient]["event_id"]]
        assert (initial["kind"], initial["expedited_days"]) == ("initial", 15)
        assert follow_up["kind"] == "follow_up" and follow_up["follows"] == initial["alert_id"]
        assert follow_up["expedited_days"] == 7
        assert "clock_shortened_to_7_days" in follow_up["reasons"]
        if reports[patient]["data"].get("site_aware_at"):
            assert initial["data_quality"] == ["site_aware_at_unusable"]
    [pneumonitis] = by_ae[unassessed["event_id"]]
    assert (pneumonitis["susar"], pneumonitis["expedited_days"]) == (True, 7)
    assert pneumonitis["not_yet_assessed"] == ["causality", "expectedness"]
    assert counted == await expected_alert_ids(nats_only, trial)  # each once, none missing


async def test_the_intake_refuses_an_acknowledgement_of_an_alert_never_raised(
    writer: WriterApp, alerter: AlerterApp, nats_only: Settings
) -> None:
    nc = await connect(nats_only.nats_url or "")
    try:
        trial = await enrolled_trial(nc, ["P1"])
        report = hospitalised_susar(trial, "P1")
        mild = event(
            "ae_reported",
            trial,
            patient_id="P1",
            data={"term": "Fatigue", "grade": 1, "serious": False, "seriousness": []},
        )
        site = SiteClient(nc, trial, "site01")
        for item in (report, mild):
            assert (await site.submit(item))["status"] == "accepted"
        officer = SiteClient(nc, trial, SAFETY_INTAKE)

        def acknowledgement(alert_id: str, ae_event_id: str) -> dict[str, Any]:
            raw = event("sae_acknowledged", trial, patient_id="P1")
            raw["data"] = {"alert_id": alert_id, "ae_event_id": ae_event_id}
            return raw

        of_mild = await officer.submit(acknowledgement(f"sae-{mild['event_id']}", mild["event_id"]))
        invented = await officer.submit(acknowledgement(f"sae-{uuid.uuid4()}", report["event_id"]))
        follow_up_not_raised = await officer.submit(
            acknowledgement(f"sae-{report['event_id']}-fu-99", report["event_id"])
        )
        real = await officer.submit(
            acknowledgement(f"sae-{report['event_id']}", report["event_id"])
        )
        await alerter.wait_caught_up(30)
    finally:
        await nc.close()
    for refused in (of_mild, invented, follow_up_not_raised):
        assert refused["status"] == "rejected"
        assert {
            "field": "data.alert_id",
            "message": "no such alert was raised for this patient",
        } in (refused["errors"])
    assert real["status"] == "accepted"


async def test_an_sae_reported_without_causality_is_accepted_and_alerted_as_a_7_day_susar(
    writer: WriterApp, alerter: AlerterApp, nats_only: Settings
) -> None:
    nc = await connect(nats_only.nats_url or "")
    try:
        trial = await enrolled_trial(nc, ["P1"])
        report = unassessed_life_threatening(trial, "P1")
        reply = await SiteClient(nc, trial, "site01").submit(report)
        await alerter.wait_caught_up(30)
    finally:
        await nc.close()
    assert reply["status"] == "accepted"
    [alert] = await alerts_in_stream(nats_only, trial)
    assert (alert["susar"], alert["expedited_days"]) == (True, 7)
    assert alert["not_yet_assessed"] == ["causality", "expectedness"]


async def test_an_escalation_after_acknowledgement_raises_a_follow_up_once_even_when_re_read(
    writer: WriterApp, nats_only: Settings
) -> None:
    nc = await connect(nats_only.nats_url or "")
    first = await create_alerter(nats_only, durable="escalation_first")
    await first.start()
    try:
        trial = await enrolled_trial(nc, ["P1"])
        site = SiteClient(nc, trial, "site01")
        report = hospitalised_susar(trial, "P1")
        assert (await site.submit(report))["status"] == "accepted"
        await first.wait_caught_up(30)
        ack = event("sae_acknowledged", trial, patient_id="P1")
        ack["data"] = {"alert_id": f"sae-{report['event_id']}", "ae_event_id": report["event_id"]}
        assert (await SiteClient(nc, trial, SAFETY_INTAKE).submit(ack))["status"] == "accepted"
        assert (await site.submit(grade_4(trial, "P1", report["event_id"])))["status"] == "accepted"
        await first.wait_caught_up(30)
    finally:
        await first.stop()
    again = await create_alerter(nats_only, durable="escalation_again")  # re-reads everything
    await again.start()
    try:
        await again.wait_caught_up(30)
        assert again.raised == 0
    finally:
        await again.stop()
        await nc.close()
    alerts = await alerts_in_stream(nats_only, trial)
    assert [alert["kind"] for alert in alerts] == ["initial", "follow_up"]
    assert alerts[1]["expedited_days"] == 7 and alerts[0]["expedited_days"] == 15


async def test_an_sae_is_alerted_even_when_the_alert_rules_cannot_read_the_history(
    writer: WriterApp, alerter: AlerterApp, nats_only: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken_rules(*_: Any, **__: Any) -> tuple[()]:
        raise RuntimeError("a history no rule foresaw")

    monkeypatch.setattr("projections.safety.alert_decision.alerts_due", broken_rules)
    nc = await connect(nats_only.nats_url or "")
    try:
        trial = await enrolled_trial(nc, ["P1"])
        report = hospitalised_susar(trial, "P1")
        reply = await SiteClient(nc, trial, "site01").submit(report)
        await alerter.wait_caught_up(30)
    finally:
        await nc.close()
    assert reply["status"] == "accepted"
    [alert] = await alerts_in_stream(nats_only, trial)
    assert alert["alert_id"] == f"sae-{report['event_id']}"
    assert alert["data_quality"] == ["alert_rules_failed"]
    assert alert["clock_unknown"] is True and alert["report_due"] is None

"""A case's alert history: given a patient's stored AE entries, which alerts are raised, when,
and which acknowledgements the writer may accept (projections.safety.sae_alerts).

Worked cases for DOMAIN.md "Serious AEs and clocks": the initial alert keeps the clock it
was raised with; each escalation raises one follow-up counted from the day the sponsor
learnt of it; unassessed causality/expectedness count as suspected/unexpected.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from events import LedgerEvent, SaeAcknowledged
from projections.fold.history import Recorded, effective_history
from projections.safety.clocks import acknowledgements, with_acknowledgements
from projections.safety.episodes import ae_episodes
from projections.safety.sae_alerts import SaeAlert, acknowledgement_errors, alert_log
from tests.unit.test_safety import (
    ON_PD1,
    PARAMETERS,
    _envelope,
    death,
    event_id,
    history,
    reported,
    updated,
)

pytestmark = pytest.mark.unit

D = dt.date.fromisoformat
T = dt.datetime.fromisoformat
HOSPITALISED: dict[str, Any] = {"serious": True, "seriousness": ["hospitalisation"]}
ASSESSED_SUSPECTED = {
    "expected": False,
    "attribution": {"haic": "unrelated", "pd1": "probable", "lenvatinib": "unrelated"},
}
ASSESSED_UNRELATED = {
    "expected": True,
    "attribution": {"haic": "unrelated", "pd1": "unrelated", "lenvatinib": "unrelated"},
}


def stored(*events: LedgerEvent) -> list[Recorded]:
    """Each event stored at the seq its number gives."""
    return [Recorded(int(str(event.event_id)[-12:]), event) for event in events]


def log(*events: LedgerEvent) -> tuple[SaeAlert, ...]:
    return alert_log(stored(*events))


def ack(n: int, alert_id: str, ae: int, report_on: str | None = None) -> SaeAcknowledged:
    recorded_at = "2025-03-01T09:00:00+00:00"
    return SaeAcknowledged(
        **{
            **_envelope(n, recorded_at[:10], "P0001", recorded_at),
            "recorded_by": "sponsor.safety_officer",
        },
        data={
            "alert_id": alert_id,
            "ae_event_id": event_id(ae),
            "expedited_report_submitted_on": report_on,
        },
    )


# The case: a grade 3 hospitalisation SUSAR, acknowledged, then grade 4

SUSAR_G3 = reported(
    1,
    "2025-02-01",
    grade=3,
    recorded_at="2025-02-02T10:00:00+00:00",
    **HOSPITALISED,
    **ASSESSED_SUSPECTED,
)
NOW_G4 = updated(3, "2025-02-09", ae=1, grade=4, recorded_at="2025-02-10T08:00:00+00:00")


def test_an_escalation_to_life_threatening_raises_one_follow_up_counted_from_its_own_day() -> None:
    first_ack = ack(2, f"sae-{event_id(1)}", ae=1)
    initial, follow_up = log(SUSAR_G3, first_ack, NOW_G4)
    assert (initial.kind, initial.clock.expedited_days) == ("initial", 15)
    assert initial.clock.report_due == D("2025-02-17")  # the first alert's deadline never moves
    assert follow_up.alert_id == f"sae-{event_id(1)}-fu-3"
    assert (follow_up.kind, follow_up.clock.follows) == ("follow_up", initial.alert_id)
    assert follow_up.clock.reasons == ("became_life_threatening", "clock_shortened_to_7_days")
    assert follow_up.clock.awareness_at == T("2025-02-10T08:00:00+00:00")  # day 0: the update
    assert (follow_up.clock.expedited_days, follow_up.clock.report_due) == (7, D("2025-02-17"))
    assert (follow_up.grade, "life_threatening" in follow_up.seriousness) == (4, True)


def test_a_follow_up_is_open_until_acknowledged_whatever_the_first_alert_s_state() -> None:
    events = (SUSAR_G3, ack(2, f"sae-{event_id(1)}", ae=1), NOW_G4)
    acknowledged = acknowledgements(effective_history(stored(*events)).events)
    initial, follow_up = (with_acknowledgements(a.clock, acknowledged) for a in log(*events))
    assert initial.status(T("2025-02-11T00:00:00+00:00")) == "acknowledged"
    assert follow_up.status(T("2025-02-11T00:00:00+00:00")) == "open"
    assert follow_up.status(T("2025-02-12T00:00:00+00:00")) == "overdue"


def test_a_non_susar_sae_assessed_as_suspected_and_unexpected_raises_a_became_susar_follow_up() -> (
    None
):
    expected_sae = reported(
        1,
        "2025-02-01",
        recorded_at="2025-02-02T10:00:00+00:00",
        **HOSPITALISED,
        **ASSESSED_UNRELATED,
    )
    assessed = updated(
        2, "2025-02-05", ae=1, recorded_at="2025-02-06T10:00:00+00:00", **ASSESSED_SUSPECTED
    )
    initial, follow_up = log(expected_sae, assessed)
    assert initial.clock.expedited_days is None
    assert follow_up.clock.reasons == ("became_susar",)
    assert follow_up.clock.report_due == D("2025-02-21")  # 15 days from 6 February


def test_a_life_threatening_susar_that_turns_fatal_raises_a_became_fatal_follow_up() -> None:
    life_threatening = reported(
        1,
        "2025-02-01",
        "Pneumonitis",
        4,
        recorded_at="2025-02-02T10:00:00+00:00",
        **ASSESSED_SUSPECTED,
    )
    died = death(2, "2025-02-07", ae=1, recorded_at="2025-02-08T10:00:00+00:00")
    initial, follow_up = log(life_threatening, died)
    assert initial.clock.expedited_days == 7
    assert follow_up.clock.reasons == ("became_fatal",)
    assert follow_up.clock.trigger_event_id == event_id(2)


def test_a_case_that_wavers_raises_nothing_twice() -> None:
    alerts = log(
        SUSAR_G3,
        updated(
            2, "2025-02-03", ae=1, recorded_at="2025-02-03T10:00:00+00:00", **ASSESSED_UNRELATED
        ),
        updated(
            3, "2025-02-04", ae=1, recorded_at="2025-02-04T10:00:00+00:00", **ASSESSED_SUSPECTED
        ),
        updated(4, "2025-02-05", ae=1, grade=4, recorded_at="2025-02-05T10:00:00+00:00"),
        updated(5, "2025-02-06", ae=1, grade=3, recorded_at="2025-02-06T10:00:00+00:00"),
        updated(6, "2025-02-07", ae=1, grade=4, recorded_at="2025-02-07T10:00:00+00:00"),
    )
    assert [(a.kind, a.clock.trigger_seq) for a in alerts] == [("initial", 1), ("follow_up", 4)]


def test_a_longer_history_never_changes_the_alerts_a_shorter_one_raised() -> None:
    events = (SUSAR_G3, NOW_G4, death(5, "2025-02-12", ae=1, recorded_at="2025-02-13T00:00:00Z"))
    for cut in range(1, len(events)):
        shorter = log(*events[:cut])
        assert log(*events)[: len(shorter)] == shorter


# Unassessed causality and expectedness (DOMAIN.md: suspected and unexpected until assessed)


def test_a_life_threatening_sae_reported_before_assessment_is_a_susar_due_in_7_days() -> None:
    [alert] = log(reported(1, "2025-02-01", "Pneumonitis", 4, recorded_at="2025-02-02T10:00:00Z"))
    assert (alert.clock.susar, alert.clock.expedited_days) == (True, 7)
    assert alert.clock.not_yet_assessed == ("causality", "expectedness")
    assert alert.message(T("2025-02-02T10:00:01+00:00"))["not_yet_assessed"] == [
        "causality",
        "expectedness",
    ]


def test_an_update_assessing_one_agent_keeps_the_others_as_they_were() -> None:
    report = reported(1, "2025-02-01", "Pneumonitis", 4, **ASSESSED_SUSPECTED)
    reassessed = updated(2, "2025-02-03", ae=1, attribution={"pd1": "unlikely"})
    still_open = reported(3, "2025-02-01", "Pneumonitis", 4, expected=False)
    [episode] = ae_episodes(history(report, reassessed), PARAMETERS, ON_PD1)
    [unassessed] = ae_episodes(
        history(still_open, updated(4, "2025-02-03", ae=3, attribution={"pd1": "unlikely"})),
        PARAMETERS,
        ON_PD1,
    )
    assert (episode.attribution.haic, episode.attribution.pd1) == ("unrelated", "unlikely")
    assert not episode.susar and episode.not_yet_assessed == ()
    assert unassessed.susar and unassessed.not_yet_assessed == ("causality",)


# What the writer accepts as an acknowledgement


def test_only_an_alert_the_ledger_raised_can_be_acknowledged() -> None:
    history = stored(SUSAR_G3, NOW_G4)
    today = D("2025-03-01")
    follow_up = f"sae-{event_id(1)}-fu-3"
    assert acknowledgement_errors(history, ack(4, f"sae-{event_id(1)}", ae=1), today) == []
    assert acknowledgement_errors(history, ack(4, follow_up, ae=1), today) == []
    [never] = acknowledgement_errors(history, ack(4, f"sae-{event_id(3)}", ae=1), today)
    assert (never.field, never.message) == (
        "data.alert_id",
        "no such alert was raised for this patient",
    )
    [not_yet] = acknowledgement_errors(history, ack(4, f"sae-{event_id(1)}-fu-9", ae=1), today)
    assert not_yet.field == "data.alert_id"


def test_an_acknowledgement_names_the_alert_s_own_ae_and_a_plausible_report_date() -> None:
    history = stored(SUSAR_G3)
    alert = f"sae-{event_id(1)}"
    today = D("2025-03-01")
    [other_ae] = acknowledgement_errors(history, ack(4, alert, ae=7), today)
    [future] = acknowledgement_errors(history, ack(4, alert, ae=1, report_on="2025-03-02"), today)
    [early] = acknowledgement_errors(history, ack(4, alert, ae=1, report_on="2025-02-01"), today)
    assert other_ae.field == "data.ae_event_id"
    assert future.field == early.field == "data.expedited_report_submitted_on"
    assert acknowledgement_errors(history, ack(4, alert, ae=1, report_on="2025-02-12"), today) == []


# An SAE is always alerted


@pytest.mark.parametrize(
    "site_aware_at",
    ["0001-01-01T00:00:00+05:00", "9999-12-31T23:00:00-05:00", "0001-01-01T00:00:00Z"],
)
def test_an_sae_with_an_odd_awareness_instant_is_alerted_with_a_data_quality_flag(
    site_aware_at: str,
) -> None:
    [alert] = log(
        reported(
            1,
            "2025-02-01",
            recorded_at="2025-02-02T10:00:00Z",
            site_aware_at=site_aware_at,
            **HOSPITALISED,
            **ASSESSED_SUSPECTED,
        )
    )
    body = alert.message(T("2025-02-02T10:00:01+00:00"))
    assert body["data_quality"] and body["report_due"] == "2025-02-17"


def test_a_v1_ae_report_keeps_its_assessment_and_an_omitted_one_reads_as_not_yet_assessed() -> None:
    from events import decode
    from events.examples import EXAMPLES

    stored_v1 = {
        **EXAMPLES["ae_reported"],
        "data": {**EXAMPLES["ae_reported"]["data"], **ASSESSED_UNRELATED},
    }
    omitted = {**EXAMPLES["ae_reported"], "data": {"term": "Pneumonitis", "grade": 4}}
    kept, unassessed = decode(stored_v1, mode="strict"), decode(omitted, mode="strict")
    assert kept.schema_version == unassessed.schema_version == 2
    assert (kept.data.attribution.pd1, kept.data.expected) == ("unrelated", True)
    assert (unassessed.data.attribution.pd1, unassessed.data.expected) == (None, None)


def _correction(n: int, target: int, data: dict[str, Any], recorded_at: str) -> LedgerEvent:
    from events import EventCorrected

    return EventCorrected(
        **{**_envelope(n, recorded_at[:10], "P0001", recorded_at), "reason": "mistyped"},
        data={"target_event_id": event_id(target), "data": data},
    )


def test_a_correction_that_escalates_the_case_raises_a_follow_up_from_the_correction() -> None:
    corrected_to_4 = _correction(
        2,
        1,
        {"term": "Hypertension", "grade": 4, **HOSPITALISED, **ASSESSED_SUSPECTED},
        "2025-02-05T09:00:00+00:00",
    )
    initial, follow_up = log(SUSAR_G3, corrected_to_4)
    assert follow_up.alert_id == f"sae-{event_id(1)}-fu-2"
    assert follow_up.clock.awareness_at == T("2025-02-05T09:00:00+00:00")
    assert (initial.clock.expedited_days, follow_up.clock.expedited_days) == (15, 7)


def test_the_entry_by_entry_fold_and_the_whole_episode_agree_on_every_prefix() -> None:
    from projections.safety.episodes import CaseFold
    from projections.safety.sae_alerts import facts_of

    entries = history(
        reported(1, "2025-02-01", grade=2, expected=False),
        updated(2, "2025-02-02", ae=1, grade=3, **HOSPITALISED),
        updated(3, "2025-02-03", ae=1, **ASSESSED_SUSPECTED),
        updated(4, "2025-02-04", ae=1, grade=4),
        updated(5, "2025-02-05", ae=1, serious=False),
        death(6, "2025-02-06", ae=1),
    )
    fold = CaseFold()
    for cut, entry in enumerate(entries, 1):
        [episode] = ae_episodes(entries[:cut], PARAMETERS, ON_PD1)
        assert fold.add(entry) == facts_of(episode)

"""SAE alerts and clocks: given a patient's stored AE entries, the alert and its deadlines."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from events import LedgerEvent, ProtocolParameters
from projections.safety.clocks import SaeClock, sae_clock, sae_clocks
from projections.safety.episodes import ae_episodes
from tests.unit.test_safety import (
    ON_PD1,
    acknowledged,
    death,
    event_id,
    history,
    reported,
    updated,
)

pytestmark = pytest.mark.unit

PARAMETERS = ProtocolParameters()
D = dt.date.fromisoformat
T = dt.datetime.fromisoformat
HOSPITALISED: dict[str, Any] = {"serious": True, "seriousness": ["hospitalisation"]}
SUSPECTED_UNEXPECTED: dict[str, Any] = {"expected": False, "attribution": {"pd1": "probable"}}


def clocks(*events: LedgerEvent) -> tuple[SaeClock, ...]:
    effective = history(*events)
    return sae_clocks(ae_episodes(effective, PARAMETERS, ON_PD1), effective, PARAMETERS)


def only_clock(*events: LedgerEvent) -> SaeClock:
    [clock] = clocks(*events)
    return clock


# What raises the alert: the first entry that makes the AE serious, and only that one


def test_serious_report_raises_the_alert() -> None:
    clock = only_clock(
        reported(1, "2025-02-01", recorded_at="2025-02-02T10:00:00+00:00", **HOSPITALISED)
    )
    assert (clock.trigger, clock.trigger_seq, clock.ae_seq) == ("reported_serious", 1, 1)
    assert clock.alert_id == f"sae-{event_id(1)}"
    assert clock.awareness_at == T("2025-02-02T10:00:00+00:00")


def test_non_serious_ae_raises_no_alert() -> None:
    assert clocks(reported(1, "2025-02-01", recorded_at="2025-02-02T10:00:00+00:00")) == ()


def test_update_adding_seriousness_raises_the_alert_from_the_update() -> None:
    clock = only_clock(
        reported(1, "2025-02-01", recorded_at="2025-02-01T10:00:00+00:00"),
        updated(2, "2025-02-04", ae=1, recorded_at="2025-02-05T08:00:00+00:00", **HOSPITALISED),
    )
    assert (clock.trigger, clock.trigger_seq, clock.ae_seq) == ("seriousness_added", 2, 1)
    assert clock.alert_id == f"sae-{event_id(2)}"
    assert clock.awareness_at == T("2025-02-05T08:00:00+00:00")


def test_update_raising_the_grade_to_4_raises_the_alert() -> None:
    clock = only_clock(
        reported(1, "2025-02-01", grade=3, recorded_at="2025-02-01T10:00:00+00:00"),
        updated(2, "2025-02-04", ae=1, grade=4, recorded_at="2025-02-04T12:00:00+00:00"),
    )
    assert (clock.trigger, clock.trigger_seq) == ("grade_4_or_5", 2)
    assert clock.fatal_or_life_threatening


def test_death_linked_to_a_non_serious_ae_raises_the_alert() -> None:
    clock = only_clock(
        reported(1, "2025-02-01", grade=3, recorded_at="2025-02-01T10:00:00+00:00"),
        death(2, "2025-02-09", ae=1, recorded_at="2025-02-10T07:00:00+00:00"),
    )
    assert (clock.trigger, clock.trigger_seq) == ("death", 2)
    assert clock.awareness_at == T("2025-02-10T07:00:00+00:00")


def test_a_serious_ae_that_worsens_keeps_its_one_alert() -> None:
    clock = only_clock(
        reported(1, "2025-02-01", grade=3, recorded_at="2025-02-01T10:00:00+00:00", **HOSPITALISED),
        updated(2, "2025-02-04", ae=1, grade=4, recorded_at="2025-02-04T12:00:00+00:00"),
        death(3, "2025-02-09", ae=1, recorded_at="2025-02-10T07:00:00+00:00"),
    )
    assert clock.trigger_seq == 1


def test_a_downgraded_then_re_escalated_ae_keeps_its_first_alert() -> None:
    clock = only_clock(
        reported(1, "2025-02-01", recorded_at="2025-02-01T10:00:00+00:00", **HOSPITALISED),
        updated(2, "2025-02-03", ae=1, serious=False, recorded_at="2025-02-03T10:00:00+00:00"),
        updated(3, "2025-02-06", ae=1, recorded_at="2025-02-06T10:00:00+00:00", **HOSPITALISED),
    )
    assert clock.trigger_seq == 1


def test_each_serious_ae_of_a_patient_has_its_own_alert() -> None:
    both = clocks(
        reported(1, "2025-02-01", recorded_at="2025-02-01T10:00:00+00:00", **HOSPITALISED),
        reported(2, "2025-02-02", term="Fatigue", grade=1, recorded_at="2025-02-02T10:00:00+00:00"),
        reported(
            3, "2025-02-03", term="Pneumonitis", grade=4, recorded_at="2025-02-03T10:00:00+00:00"
        ),
    )
    assert [clock.ae_seq for clock in both] == [1, 3]


# Expedited clocks: 7 days, 15 days or none; day 0 = the awareness date


def test_fatal_susar_is_due_in_7_days() -> None:
    clock = only_clock(
        reported(
            1,
            "2025-02-01",
            term="Hepatic failure",
            grade=5,
            recorded_at="2025-02-02T10:00:00+00:00",
            **SUSPECTED_UNEXPECTED,
        )
    )
    assert (clock.susar, clock.expedited_days, clock.report_due) == (True, 7, D("2025-02-09"))


def test_life_threatening_susar_is_due_in_7_days() -> None:
    clock = only_clock(
        reported(
            1,
            "2025-02-01",
            serious=True,
            seriousness=["life_threatening"],
            recorded_at="2025-02-02T10:00:00+00:00",
            **SUSPECTED_UNEXPECTED,
        )
    )
    assert (clock.expedited_days, clock.report_due) == (7, D("2025-02-09"))


def test_hospitalising_susar_is_due_in_15_days() -> None:
    clock = only_clock(
        reported(
            1,
            "2025-02-01",
            recorded_at="2025-02-02T10:00:00+00:00",
            **HOSPITALISED,
            **SUSPECTED_UNEXPECTED,
        )
    )
    assert (clock.expedited_days, clock.report_due) == (15, D("2025-02-17"))


def test_expected_sae_has_no_expedited_clock_but_is_still_to_be_acknowledged() -> None:
    clock = only_clock(
        reported(
            1,
            "2025-02-01",
            recorded_at="2025-02-02T10:00:00+00:00",
            expected=True,
            attribution={"pd1": "definite"},
            **HOSPITALISED,
        )
    )
    assert (clock.susar, clock.expedited_days, clock.report_due) == (False, None, None)
    assert clock.acknowledgement_due == D("2025-02-03")


def test_day_0_is_the_utc_date_the_sponsor_knew() -> None:
    # 23:30 in New York on 1 February is 04:30 UTC on 2 February.
    clock = only_clock(
        reported(
            1,
            "2025-02-01",
            recorded_at="2025-02-01T23:30:00-05:00",
            **HOSPITALISED,
            **SUSPECTED_UNEXPECTED,
        )
    )
    assert clock.awareness_on == D("2025-02-02")
    assert clock.report_due == D("2025-02-17")


def test_an_sae_whose_clock_cannot_be_computed_still_has_its_alert_with_the_clock_unknown() -> None:
    [episode] = ae_episodes(
        history(reported(1, "2025-02-01", **HOSPITALISED, **SUSPECTED_UNEXPECTED)),
        PARAMETERS,
        ON_PD1,
    )
    clock = sae_clock(episode, (), PARAMETERS)  # not stored: no recorded_at, no day 0
    assert clock is not None and clock.alert_id == f"sae-{event_id(1)}"
    assert clock.clock_unknown and clock.data_quality == ("awareness_unknown",)
    assert (clock.expedited_days, clock.report_due, clock.acknowledgement_due) == (15, None, None)
    assert clock.status(T("2030-01-01T00:00:00+00:00")) == "open"  # unknown is never on time


@pytest.mark.parametrize(
    "site_aware_at", ["0001-01-01T00:00:00+05:00", "9999-12-31T23:59:59-05:00"]
)
def test_an_awareness_instant_without_a_utc_form_is_flagged_and_the_sae_still_alerted(
    site_aware_at: str,
) -> None:
    clock = only_clock(
        reported(
            1,
            "2025-02-01",
            site_aware_at=site_aware_at,
            recorded_at="2025-02-02T10:00:00+00:00",
            **HOSPITALISED,
            **SUSPECTED_UNEXPECTED,
        )
    )
    assert clock.data_quality == ("site_aware_at_unusable",)
    assert (clock.late_entry, clock.site_aware_at) == (None, None)
    assert clock.report_due == D("2025-02-17")  # day 0 is the sponsor's, still known


def test_a_site_awareness_after_the_entry_or_before_the_onset_is_flagged() -> None:
    later = only_clock(
        reported(
            1,
            "2025-02-01",
            site_aware_at="2025-02-05T00:00:00Z",
            recorded_at="2025-02-02T10:00:00+00:00",
            **HOSPITALISED,
        )
    )
    earlier = only_clock(
        reported(
            1,
            "2025-02-01",
            site_aware_at="0001-01-01T00:00:00Z",
            recorded_at="2025-02-02T10:00:00+00:00",
            **HOSPITALISED,
        )
    )
    assert later.data_quality == ("site_aware_at_after_entry",)
    assert earlier.data_quality == ("site_aware_at_before_onset",)


# Late entry: site → sponsor within 24 hours of the site's awareness


def test_entry_exactly_24_hours_after_site_awareness_is_on_time() -> None:
    clock = only_clock(
        reported(
            1,
            "2025-02-01",
            site_aware_at="2025-02-01T09:30:00Z",
            recorded_at="2025-02-02T09:30:00+00:00",
            **HOSPITALISED,
        )
    )
    assert clock.late_entry is False


def test_entry_24_hours_and_1_second_after_site_awareness_is_late() -> None:
    clock = only_clock(
        reported(
            1,
            "2025-02-01",
            site_aware_at="2025-02-01T09:30:00Z",
            recorded_at="2025-02-02T09:30:01+00:00",
            **HOSPITALISED,
        )
    )
    assert clock.late_entry is True


def test_late_entry_compares_instants_across_time_zones() -> None:
    clock = only_clock(
        reported(
            1,
            "2025-02-01",
            site_aware_at="2025-02-01T17:30:00+08:00",
            recorded_at="2025-02-02T09:30:00+00:00",
            **HOSPITALISED,
        )
    )
    assert clock.late_entry is False


def test_late_entry_is_unknown_without_site_awareness() -> None:
    clock = only_clock(
        reported(1, "2025-02-01", recorded_at="2025-02-09T09:30:00+00:00", **HOSPITALISED)
    )
    assert clock.late_entry is None


def test_late_entry_threshold_follows_the_protocol_parameter() -> None:
    [episode] = ae_episodes(
        history(
            reported(
                1,
                "2025-02-01",
                site_aware_at="2025-02-01T09:30:00Z",
                recorded_at="2025-02-01T21:30:00+00:00",
                **HOSPITALISED,
            )
        ),
        PARAMETERS,
        ON_PD1,
    )
    clock = sae_clock(episode, (), ProtocolParameters(late_entry_hours=11))
    assert clock is not None
    assert clock.late_entry is True


# Acknowledgement and overdue


SUSAR_ON_2_FEBRUARY = reported(
    1, "2025-02-01", recorded_at="2025-02-02T10:00:00+00:00", **HOSPITALISED, **SUSPECTED_UNEXPECTED
)


def test_unacknowledged_alert_is_overdue_after_the_day_following_awareness() -> None:
    clock = only_clock(SUSAR_ON_2_FEBRUARY)
    assert not clock.overdue(T("2025-02-03T23:59:59+00:00"))
    assert clock.overdue(T("2025-02-04T00:00:00+00:00"))
    assert clock.acknowledgement_overdue(T("2025-02-04T00:00:00+00:00"))


def test_acknowledged_susar_is_overdue_only_once_its_report_is_due() -> None:
    clock = only_clock(
        SUSAR_ON_2_FEBRUARY,
        acknowledged(2, alert_of=1, ae=1, recorded_at="2025-02-02T15:00:00+00:00"),
    )
    assert clock.acknowledged
    assert clock.acknowledgement_seqs == (2,)
    assert not clock.overdue(T("2025-02-17T23:00:00+00:00"))
    assert clock.overdue(T("2025-02-18T00:00:00+00:00"))
    assert clock.report_overdue(T("2025-02-18T00:00:00+00:00"))


def test_submitted_expedited_report_stops_the_clock() -> None:
    clock = only_clock(
        SUSAR_ON_2_FEBRUARY,
        acknowledged(2, alert_of=1, ae=1, recorded_at="2025-02-02T15:00:00+00:00"),
        acknowledged(
            3, alert_of=1, ae=1, recorded_at="2025-02-12T15:00:00+00:00", report_on="2025-02-12"
        ),
    )
    assert clock.report_submitted_on == D("2025-02-12")
    assert clock.acknowledged_at == T("2025-02-02T15:00:00+00:00")
    assert not clock.overdue(T("2025-03-01T00:00:00+00:00"))


def test_acknowledging_another_alert_does_not_acknowledge_this_one() -> None:
    clock = only_clock(
        SUSAR_ON_2_FEBRUARY,
        acknowledged(2, alert_of=9, ae=9, recorded_at="2025-02-02T15:00:00+00:00"),
    )
    assert not clock.acknowledged

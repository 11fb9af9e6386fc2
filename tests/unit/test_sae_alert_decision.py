"""The alerter's decider, entry by entry, against an in-memory ALERTS index (pure)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from events import LedgerEvent, ProtocolParameters
from projections.fold.history import Recorded
from projections.safety.alert_decision import (
    KnownAlerts,
    TrialParameters,
    decide_entry,
    is_alert_input,
    new_alerts,
)
from projections.safety.sae_alerts import SaeAlert
from projections.safety.sae_fallback import RULES_FAILED
from tests.unit.test_safety import death, event_id, reported, updated

pytestmark = pytest.mark.unit

HOSPITALISED: dict[str, Any] = {"serious": True, "seriousness": ["hospitalisation"]}
SUSPECTED = {
    "expected": False,
    "attribution": {"haic": "unrelated", "pd1": "probable", "lenvatinib": "unrelated"},
}


def seq_of(event: LedgerEvent) -> int:
    return int(str(event.event_id)[-12:])


@dataclass
class FakeAlerter:
    """The alerter's loop without NATS: a patient's history, ALERTS as a list, the index."""

    parameters: TrialParameters = field(default_factory=TrialParameters)
    history: list[Recorded] = field(default_factory=list)
    known: KnownAlerts = field(default_factory=KnownAlerts)
    published: list[SaeAlert] = field(default_factory=list)

    def entry(self, event: LedgerEvent) -> tuple[SaeAlert, ...]:
        """One ledger entry through the decider; what it newly publishes."""
        recorded = Recorded(seq_of(event), event)
        self.history.append(recorded)
        return self.redeliver(recorded)

    def redeliver(self, recorded: Recorded) -> tuple[SaeAlert, ...]:
        decision = decide_entry(
            self.history, recorded, lambda at: self.parameters.at("HAIC-PD1-LEN", at)
        )
        fresh = new_alerts(decision.due, self.known)
        for alert in fresh:
            self.known.add(alert.alert_id, alert.ae_event_id, alert.kind)
            self.published.append(alert)
        return fresh


SUSAR_G3 = reported(1, "2025-02-01", grade=3, recorded_at="2025-02-02T10:00:00+00:00", **HOSPITALISED, **SUSPECTED)  # fmt: skip
NOW_G4 = updated(3, "2025-02-09", ae=1, grade=4, recorded_at="2025-02-10T08:00:00+00:00")


def test_a_serious_report_raises_its_initial_alert_once() -> None:
    alerter = FakeAlerter()
    [initial] = alerter.entry(SUSAR_G3)
    assert (initial.alert_id, initial.kind) == (f"sae-{event_id(1)}", "initial")


def test_a_non_serious_ae_raises_nothing() -> None:
    assert FakeAlerter().entry(reported(1, "2025-02-01", grade=2)) == ()


def test_an_escalation_raises_its_follow_up_exactly_once_whatever_is_redelivered() -> None:
    alerter = FakeAlerter()
    alerter.entry(SUSAR_G3)
    [follow_up] = alerter.entry(NOW_G4)
    assert (follow_up.alert_id, follow_up.kind) == (f"sae-{event_id(1)}-fu-3", "follow_up")
    assert alerter.redeliver(alerter.history[-1]) == ()
    assert alerter.redeliver(alerter.history[0]) == ()
    assert [a.alert_id for a in alerter.published] == [
        f"sae-{event_id(1)}",
        f"sae-{event_id(1)}-fu-3",
    ]


def test_a_restarted_alerter_indexing_alerts_from_headers_publishes_nothing_again() -> None:
    first = FakeAlerter()
    first.entry(SUSAR_G3)
    first.entry(NOW_G4)
    restarted = FakeAlerter()
    for alert in first.published:  # ALERTS headers as read at start, upper-cased by some client
        restarted.known.add(alert.alert_id.upper(), alert.ae_event_id.upper(), alert.kind)
    restarted.entry(SUSAR_G3)
    assert restarted.entry(NOW_G4) == ()


def test_an_ae_with_an_initial_alert_under_another_id_is_not_alerted_again() -> None:
    alerter = FakeAlerter()
    alerter.known.add("sae-some-older-id", event_id(1), "initial")
    assert alerter.entry(SUSAR_G3) == ()


def test_a_known_follow_up_does_not_hide_the_ae_s_initial_alert() -> None:
    alerter = FakeAlerter()
    alerter.known.add(f"sae-{event_id(1)}-fu-3", event_id(1), "follow_up")
    [initial] = alerter.entry(SUSAR_G3)
    assert initial.kind == "initial"


def test_a_death_from_a_serious_ae_raises_a_became_fatal_follow_up() -> None:
    alerter = FakeAlerter()
    alerter.entry(SUSAR_G3)
    [fatal] = alerter.entry(death(2, "2025-02-05", ae=1, recorded_at="2025-02-05T12:00:00+00:00"))
    assert fatal.kind == "follow_up" and "became_fatal" in fatal.clock.reasons


def test_an_entry_is_judged_by_the_parameters_in_force_at_its_seq() -> None:
    relaxed = FakeAlerter()
    strict = FakeAlerter()
    strict.parameters.learn("HAIC-PD1-LEN", 0, ProtocolParameters(late_entry_hours=12))
    late = reported(1, "2025-02-01", grade=3, recorded_at="2025-02-02T10:00:00+00:00", **HOSPITALISED, **SUSPECTED, site_aware_at="2025-02-01T20:00:00Z")  # fmt: skip
    [lenient] = relaxed.entry(late)
    [severe] = strict.entry(late)
    assert (lenient.clock.late_entry, severe.clock.late_entry) == (False, True)


def test_an_unreadable_history_still_alerts_a_serious_entry_with_the_rules_failed_flag() -> None:
    def broken(_seq: int) -> ProtocolParameters:
        raise RuntimeError("no rule foresaw this")

    recorded = Recorded(1, SUSAR_G3)
    decision = decide_entry([recorded], recorded, broken)
    assert decision.failure == "no rule foresaw this"
    [fallback] = decision.due
    assert fallback.alert_id == f"sae-{event_id(1)}" and RULES_FAILED in fallback.clock.data_quality


def test_an_unreadable_history_raises_nothing_for_a_non_serious_entry() -> None:
    def broken(_seq: int) -> ProtocolParameters:
        raise RuntimeError("no rule foresaw this")

    recorded = Recorded(1, reported(1, "2025-02-01"))
    assert decide_entry([recorded], recorded, broken).due == ()


def test_the_alerter_keeps_only_entries_that_bear_on_seriousness() -> None:
    assert is_alert_input({"type": "ae_updated"}) and is_alert_input({"type": "event_corrected"})
    assert not is_alert_input({"type": "infusion_given"})
    assert not is_alert_input({"type": "sae_acknowledged"})

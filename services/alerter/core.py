"""Which SAE alerts a patient's ledger calls for (DOMAIN.md "Serious AEs and clocks").

Pure apart from its inputs: the alerter service feeds it a patient's recorded history as of
one ledger entry and the alerts already in ALERTS, and publishes what comes back. The rules
themselves live in `projections.safety` (when an AE becomes serious) and `projections.clocks`
(alert id, expedited clock, late entry), shared with the safety read model and the tests.
"""

from __future__ import annotations

import bisect
import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from events import (
    AeReported,
    AeUpdated,
    Death,
    EventCorrected,
    EventRetracted,
    LedgerEvent,
    ProtocolParameters,
)
from projections.clocks import SaeClock, sae_clocks
from projections.history import Recorded, effective_history
from projections.safety import AeEpisode, patient_safety

# The ledger entries that can make an AE serious or change what its alert says.
ALERT_EVENT_TYPES = ("ae_reported", "ae_updated", "death", "event_corrected", "event_retracted")
PARAMETERS_TYPE = "protocol_parameters_set"
ALERT_FILTER_SUBJECTS = [
    *(f"ledger.*.*.*.{kind}" for kind in ALERT_EVENT_TYPES),
    f"ledger.*.*.*.{PARAMETERS_TYPE}",
]
# Carried on every ALERTS message so a restart can index alerts per AE from headers alone.
AE_HEADER = "Ledger-Ae-Event-Id"


def is_alert_input(stored: dict[str, Any]) -> bool:
    """The history the alerter keeps per patient: only entries that bear on seriousness."""
    return stored.get("type") in ALERT_EVENT_TYPES


@dataclass(frozen=True, slots=True)
class Alert:
    """One SAE alert as published to ALERTS (DESIGN.md "ALERTS messages")."""

    trial_id: str
    site_id: str
    patient_id: str
    term: str
    grade: int
    seriousness: tuple[str, ...]
    clock: SaeClock

    @property
    def alert_id(self) -> str:
        return self.clock.alert_id

    @property
    def ae_event_id(self) -> str:
        return self.clock.ae_event_id

    def message(self, raised_at: dt.datetime) -> dict[str, Any]:
        """The JSON body of the ALERTS message; `raised_at` is the alerter's own clock."""
        clock = self.clock
        return {
            "alert_id": clock.alert_id,
            "trial_id": self.trial_id,
            "site_id": self.site_id,
            "patient_id": self.patient_id,
            "ae_event_id": clock.ae_event_id,
            "seq": clock.ae_seq,
            "term": self.term,
            "grade": self.grade,
            "seriousness": list(self.seriousness),
            "susar": clock.susar,
            "expedited_days": clock.expedited_days,
            "report_due": clock.report_due.isoformat() if clock.report_due else None,
            "acknowledgement_due": clock.acknowledgement_due.isoformat(),
            "awareness_at": _iso(clock.awareness_at),
            "late_entry": clock.late_entry,
            "trigger": clock.trigger,
            "trigger_seq": clock.trigger_seq,
            "raised_at": _iso(raised_at),
        }


def _iso(moment: dt.datetime) -> str:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return moment.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def ae_of(event: LedgerEvent) -> str | None:
    """The AE an entry belongs to (its own id for a report), lower-cased; None if none."""
    match event:
        case AeReported(event_id=event_id):
            return str(event_id).lower()
        case AeUpdated(data=data) | Death(data=data) if data.ae_event_id:
            return data.ae_event_id.lower()
        case _:
            return None


def touched_aes(event: LedgerEvent) -> frozenset[str] | None:
    """The AEs an entry can make serious; None when that takes the history to tell (a
    correction or retraction may reach any AE of the patient)."""
    match event:
        case EventCorrected() | EventRetracted():
            return None
        case _:
            ae_event_id = ae_of(event)
            return frozenset({ae_event_id} if ae_event_id else ())


def alerts_due(
    recorded: Sequence[Recorded],
    parameters: ProtocolParameters,
    only: frozenset[str] | None = None,
) -> tuple[Alert, ...]:
    """Every alert one patient's history calls for: one per AE that became serious.

    DOMAIN.md: an AE becomes serious by a serious report, an update adding seriousness or
    raising the grade to 4/5, or a death linked to it; the alert is raised once, by the entry
    that first made it so (`projections.safety.SeriousOnset`), and carries its clocks
    (`projections.clocks.sae_clock`: 7/15-day expedited report for SUSARs, late entry
    > `late_entry_hours` after site awareness). `only` limits the answer to those AEs (by
    id): an AE's seriousness depends on its own entries alone, so deciding one entry costs
    that AE's history, not the patient's.
    """
    events = effective_history(sorted(recorded, key=lambda entry: entry.seq)).events
    if only is not None:
        events = tuple(entry for entry in events if ae_of(entry.event) in only)
    if not events:
        return ()
    safety = patient_safety(events, parameters)
    episodes = {episode.ae_event_id: episode for episode in safety.episodes}
    trial_id, site_id, patient_id = safety.patient_key
    return tuple(
        _alert(trial_id, site_id, patient_id, episodes[clock.ae_event_id], clock)
        for clock in sae_clocks(safety.episodes, events, parameters)
    )


def _alert(
    trial_id: str, site_id: str, patient_id: str, episode: AeEpisode, clock: SaeClock
) -> Alert:
    return Alert(
        trial_id,
        site_id,
        patient_id,
        episode.term,
        episode.worst_grade,
        tuple(episode.seriousness),
        clock,
    )


@dataclass
class KnownAlerts:
    """The alerts already in ALERTS, by alert id and by AE: never publish either again.

    JetStream's duplicate window (7 days on ALERTS) stops a re-sent alert id only that long;
    this index, rebuilt from ALERTS at start, makes "exactly once" hold at any distance in
    time, and also when a correction moves an AE's first serious entry (one alert per AE).
    """

    alert_ids: set[str] = field(default_factory=set)
    ae_event_ids: set[str] = field(default_factory=set)

    def add(self, alert_id: str | None, ae_event_id: str | None) -> None:
        if alert_id:
            self.alert_ids.add(alert_id.lower())
        if ae_event_id:
            self.ae_event_ids.add(ae_event_id.lower())

    def knows(self, alert: Alert) -> bool:
        return (
            alert.alert_id.lower() in self.alert_ids
            or alert.ae_event_id.lower() in self.ae_event_ids
        )

    def __len__(self) -> int:
        return len(self.alert_ids)


def new_alerts(due: Iterable[Alert], known: KnownAlerts) -> tuple[Alert, ...]:
    """The alerts of `due` that ALERTS does not hold yet, in the order the AEs were reported."""
    return tuple(alert for alert in due if not known.knows(alert))


@dataclass
class TrialParameters:
    """Each trial's protocol parameters by ledger seq: an entry is judged by the version in
    force when it was recorded, so a replay or a restart decides exactly as the first run."""

    versions: dict[str, list[tuple[int, ProtocolParameters]]] = field(default_factory=dict)

    def learn(self, trial_id: str, seq: int, parameters: ProtocolParameters) -> None:
        known = self.versions.setdefault(trial_id, [])
        if all(existing != seq for existing, _ in known):
            bisect.insort(known, (seq, parameters), key=lambda item: item[0])

    def at(self, trial_id: str, seq: int) -> ProtocolParameters:
        known = self.versions.get(trial_id, [])
        position = bisect.bisect_right([existing for existing, _ in known], seq)
        return known[position - 1][1] if position else ProtocolParameters()

"""The alerter's decider: one ledger entry and its patient's history → the alerts to publish.

DOMAIN.md "Serious AEs and clocks": the rules themselves — when an AE becomes serious, what
counts as an escalation, alert ids and clocks — are `projections.safety.sae_alerts`, shared with the
writer and the safety view. This module holds the alerter's part of the decision: which
entries bear on seriousness, which parameters version judges an entry (the one in force at
its seq), the fallback alert when the rules cannot read a history ("never miss one"), and the
index of alerts already published, so each alert goes out exactly once at any distance in
time. The alerter reads the ledger and ALERTS and publishes; it decides nothing itself.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from events import ProtocolParameters
from projections.fold.history import Recorded
from projections.safety.sae_alerts import ParametersAt, SaeAlert, alert_log, touched_aes
from projections.safety.sae_fallback import fallback_alert

# The ledger entries that can make an AE serious, escalate it or change what its alert says.
ALERT_EVENT_TYPES = ("ae_reported", "ae_updated", "death", "event_corrected", "event_retracted")


def is_alert_input(stored: dict[str, Any]) -> bool:
    """The history the alerter keeps per patient: only entries that bear on seriousness."""
    return stored.get("type") in ALERT_EVENT_TYPES


def alerts_due(
    recorded: Sequence[Recorded],
    parameters: ProtocolParameters | ParametersAt,
    only: frozenset[str] | None = None,
) -> tuple[SaeAlert, ...]:
    """Every alert one patient's history calls for so far (`projections.safety.sae_alerts.alert_log`):
    the initial alert of each AE that became serious and a follow-up per escalation."""
    if isinstance(parameters, ProtocolParameters):
        fixed = parameters
        return alert_log(recorded, lambda _seq: fixed, only)
    return alert_log(recorded, parameters, only)


@dataclass(frozen=True)
class EntryDecision:
    """The alerts an entry calls for (published or not), and why the rules could not tell
    when they could not (then `due` is the fallback alert of a serious entry, if any)."""

    due: tuple[SaeAlert, ...]
    failure: str | None = None


def decide_entry(
    history: Sequence[Recorded], entry: Recorded, parameters_at: ParametersAt
) -> EntryDecision:
    """The alerts the patient's history, ending with `entry`, calls for on the AEs `entry`
    can touch, each judged by the parameters in force at its seq.

    A history the rules cannot read fails the same way every time: the entry still alerts on
    its own facts when it is serious, clock unknown (`projections.safety.sae_fallback`)."""
    try:
        return EntryDecision(alerts_due(history, parameters_at, touched_aes(entry.event)))
    except Exception as exc:  # never miss one: any failure falls back
        fallback = fallback_alert(entry.event, entry.seq)
        return EntryDecision(() if fallback is None else (fallback,), str(exc)[:300])


@dataclass
class KnownAlerts:
    """The alerts already in ALERTS, by alert id and by AE: never publish either again.

    JetStream's duplicate window (7 days on ALERTS) stops a re-sent alert id only that long;
    this index, rebuilt from ALERTS at start, makes "exactly once" hold at any distance in
    time, and also when a correction moves an AE's first serious entry (one initial alert per
    AE; follow-ups are known by their own ids).
    """

    alert_ids: set[str] = field(default_factory=set)
    ae_event_ids: set[str] = field(default_factory=set)  # AEs with an initial alert

    def add(self, alert_id: str | None, ae_event_id: str | None, kind: str | None = None) -> None:
        if alert_id:
            self.alert_ids.add(alert_id.lower())
        if ae_event_id and kind != "follow_up":
            self.ae_event_ids.add(ae_event_id.lower())

    def knows(self, alert: SaeAlert) -> bool:
        if alert.alert_id.lower() in self.alert_ids:
            return True
        return alert.kind == "initial" and alert.ae_event_id.lower() in self.ae_event_ids

    def __len__(self) -> int:
        return len(self.alert_ids)


def new_alerts(due: Iterable[SaeAlert], known: KnownAlerts) -> tuple[SaeAlert, ...]:
    """The alerts of `due` that ALERTS does not hold yet, in the order they were raised."""
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


__all__ = [
    "ALERT_EVENT_TYPES",
    "EntryDecision",
    "KnownAlerts",
    "TrialParameters",
    "alerts_due",
    "decide_entry",
    "is_alert_input",
    "new_alerts",
]

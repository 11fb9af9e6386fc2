"""What the alerter publishes: its subjects and headers; the decision is in projections.

The rules — when an AE becomes serious, what counts as an escalation, alert ids and clocks —
live in `projections.safety.sae_alerts` (shared with the writer, which refuses acknowledgements of
alerts never raised, and with the safety view); the alerter's own decision — which entries it
reads, the parameters in force per entry, the fallback alert, the index of alerts already in
ALERTS — is `projections.safety.alert_decision`, re-exported here for the alerter's callers.
"""

from __future__ import annotations

from events.subjects import type_wildcard
from projections.safety.alert_decision import (
    ALERT_EVENT_TYPES,
    EntryDecision,
    KnownAlerts,
    TrialParameters,
    alerts_due,
    decide_entry,
    is_alert_input,
    new_alerts,
)
from projections.safety.sae_alerts import SaeAlert, touched_aes

PARAMETERS_TYPE = "protocol_parameters_set"
ALERT_FILTER_SUBJECTS = [type_wildcard(kind) for kind in (*ALERT_EVENT_TYPES, PARAMETERS_TYPE)]
# Carried on every ALERTS message so a restart can index alerts per AE from headers alone.
AE_HEADER = "Ledger-Ae-Event-Id"
KIND_HEADER = "Ledger-Alert-Kind"  # "initial" or "follow_up"; absent on older initial alerts

Alert = SaeAlert
__all__ = [
    "ALERT_EVENT_TYPES",
    "Alert",
    "EntryDecision",
    "KnownAlerts",
    "TrialParameters",
    "alerts_due",
    "decide_entry",
    "is_alert_input",
    "new_alerts",
    "touched_aes",
]

"""The alert an SAE still gets when the alert rules cannot read its patient's history.

"Never miss one" outranks every derivation: an entry that reports an AE as serious, or
updates one to serious, is alerted even when the history around it cannot be folded (a
ledger entry no rule foresaw, a bug). Such an alert says only what the entry itself says;
its clock is unknown and it carries the `alert_rules_failed` data-quality flag, so the
safety officer knows to look at the case by hand. Its id is the one the rules would give
(`sae-<event_id>` for a report, the follow-up id for an update), so a later successful
derivation never raises the same alert twice.
"""

from __future__ import annotations

from events import AeReported, AeUpdated, LedgerEvent
from projections.safety.clocks import AlertKind, SaeClock
from projections.safety.sae_alerts import SaeAlert, follow_up_id

RULES_FAILED = "alert_rules_failed"
UNKNOWN_TERM = "(unknown: see the AE report)"


def fallback_alert(event: LedgerEvent, seq: int) -> SaeAlert | None:
    """The alert a serious entry raises on its own facts alone; None when it is not serious."""
    kind: AlertKind
    match event:
        case AeReported(data=data) if data.serious:
            ae_event_id = str(event.event_id).lower()
            alert_id, kind, follows = f"sae-{ae_event_id}", "initial", None
            term, grade, seriousness = data.term, data.grade, data.seriousness
        case AeUpdated(data=data) if data.serious:
            ae_event_id = data.ae_event_id.lower()
            alert_id, kind, follows = follow_up_id(ae_event_id, seq), "follow_up", None
            term, grade, seriousness = UNKNOWN_TERM, data.grade or 0, data.seriousness or ()
        case _:
            return None
    clock = SaeClock(
        alert_id=alert_id,
        ae_event_id=ae_event_id,
        ae_seq=seq,
        trigger_event_id=str(event.event_id).lower(),
        trigger_seq=seq,
        trigger="reported_serious" if kind == "initial" else "escalation",
        awareness_at=event.recorded_at,
        site_aware_at=None,
        late_entry=None,
        susar=True,  # unknown is treated as the stricter case until someone looks
        fatal_or_life_threatening="death" in seriousness or "life_threatening" in seriousness,
        expedited_days=None,
        acknowledgement_due=None,
        report_due=None,
        acknowledgement_seqs=(),
        acknowledged_at=None,
        report_submitted_on=None,
        kind=kind,
        follows=follows,
        data_quality=(RULES_FAILED,),
    )
    return SaeAlert(
        trial_id=event.trial_id,
        site_id=event.site_id,
        patient_id=event.patient_id,
        term=term,
        grade=grade,
        seriousness=tuple(seriousness),
        clock=clock,
    )

"""SAE alerts and their clocks (DOMAIN.md "Serious AEs and clocks"; ICH E2A, 21 CFR 312.32).

Rules, all in calendar days counted on UTC dates, day 0 = the date the sponsor first knew
(the ledger's `recorded_at` of the entry that first made the AE serious — or, for a follow-up
alert, of the entry that escalated it):
- every SAE raises one alert, `alert_id` = "sae-<trigger event_id>", to be acknowledged by a
  safety officer (`sae_acknowledged`) by the end of day 1; every later escalation raises a
  follow-up alert (`projections.safety.sae_alerts`), acknowledged on its own;
- a SUSAR also needs an expedited report: by day 7 if fatal or life-threatening, else day 15;
- the site must enter the SAE within `late_entry_hours` (24) of its own awareness; a longer gap
  flags the entry late (exactly 24 h is on time).
A clock is never a reason to stay silent: what cannot be computed (an awareness instant out of
range, an entry not stored yet) is None, and the clock says why in `data_quality`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Literal

from events import ProtocolParameters, SaeAcknowledged
from projections.common.calendar import add_days
from projections.fold.history import Effective
from projections.safety.episodes import AeEpisode

AlertKind = Literal["initial", "follow_up"]
AlertStatus = Literal["open", "acknowledged", "overdue"]
# Data-quality flags a clock carries (shown in the alert and the safety view).
AWARENESS_UNKNOWN = "awareness_unknown"  # the entry has no usable recorded_at
SITE_AWARE_AT_UNUSABLE = "site_aware_at_unusable"  # not representable as a UTC instant
SITE_AWARE_AFTER_ENTRY = "site_aware_at_after_entry"  # the site knew after it told us
SITE_AWARE_BEFORE_ONSET = "site_aware_at_before_onset"  # the site knew before the AE began

ACKNOWLEDGEMENT_DAYS = 1
FATAL_OR_LIFE_THREATENING_SUSAR_DAYS = 7
OTHER_SUSAR_DAYS = 15


@dataclass(frozen=True, slots=True)
class Acknowledgement:
    """A safety officer's `sae_acknowledged` entry."""

    alert_id: str
    seq: int
    recorded_at: dt.datetime | None
    expedited_report_submitted_on: dt.date | None


@dataclass(frozen=True, slots=True)
class SaeClock:
    """One SAE alert (initial or follow-up) and its deadlines, as the alert said when raised."""

    alert_id: str
    ae_event_id: str
    ae_seq: int
    trigger_event_id: str
    trigger_seq: int
    trigger: str  # a SeriousTrigger for the initial alert, "escalation" for a follow-up
    awareness_at: dt.datetime | None
    site_aware_at: dt.datetime | None
    late_entry: bool | None
    susar: bool
    fatal_or_life_threatening: bool
    expedited_days: int | None
    acknowledgement_due: dt.date | None
    report_due: dt.date | None
    acknowledgement_seqs: tuple[int, ...]
    acknowledged_at: dt.datetime | None
    report_submitted_on: dt.date | None
    kind: AlertKind = "initial"
    follows: str | None = None  # the case's previous alert (follow-ups)
    reasons: tuple[str, ...] = ()  # what escalated (follow-ups)
    data_quality: tuple[str, ...] = ()
    not_yet_assessed: tuple[str, ...] = ()  # "causality", "expectedness": site to complete

    @property
    def awareness_on(self) -> dt.date | None:
        return None if self.awareness_at is None else self.awareness_at.date()

    @property
    def clock_unknown(self) -> bool:
        """The deadlines could not be computed: shown as unknown, never as on time."""
        return self.acknowledgement_due is None

    @property
    def acknowledged(self) -> bool:
        return bool(self.acknowledgement_seqs)

    def acknowledgement_overdue(self, now: dt.datetime) -> bool:
        """Not acknowledged and the acknowledgement day has passed (UTC)."""
        due = self.acknowledgement_due
        return not self.acknowledged and due is not None and _utc(now).date() > due

    def report_overdue(self, now: dt.datetime) -> bool:
        """A SUSAR whose expedited report is not submitted and whose due date has passed."""
        return (
            self.report_due is not None
            and self.report_submitted_on is None
            and _utc(now).date() > self.report_due
        )

    def overdue(self, now: dt.datetime) -> bool:
        """Overdue = no acknowledgement or no expedited report by its due date."""
        return self.acknowledgement_overdue(now) or self.report_overdue(now)

    def status(self, now: dt.datetime) -> AlertStatus:
        """Overdue when a deadline passed unmet, else acknowledged or open (DOMAIN.md)."""
        if self.overdue(now):
            return "overdue"
        return "acknowledged" if self.acknowledged else "open"


def _utc(moment: dt.datetime) -> dt.datetime:
    # Naive datetimes on the ledger are UTC by the audit-trail rule (DOMAIN.md).
    if moment.tzinfo is None:
        return moment.replace(tzinfo=dt.UTC)
    return moment.astimezone(dt.UTC)


def as_utc(moment: dt.datetime | None) -> dt.datetime | None:
    """The instant in UTC, or None when it has no UTC form (year 1 at +05:00, year 9999 at
    -05:00: outside what dates can hold)."""
    if moment is None:
        return None
    try:
        return _utc(moment)
    except (OverflowError, ValueError):
        return None


def _plus_days(day: dt.date | None, days: int) -> dt.date | None:
    return None if day is None else add_days(day, days)


def alert_id(trigger_event_id: str) -> str:
    """The alert's id, also its Nats-Msg-Id, so a re-derived alert is deduplicated (DESIGN.md)."""
    return f"sae-{trigger_event_id}"


def expedited_days(susar: bool, fatal_or_life_threatening: bool) -> int | None:
    """Expedited-report clock of an SAE: 7 days for a fatal or life-threatening SUSAR, 15 for
    any other SUSAR, none for an SAE that is not a SUSAR (21 CFR 312.32(c); ICH E2A III.A)."""
    if not susar:
        return None
    return FATAL_OR_LIFE_THREATENING_SUSAR_DAYS if fatal_or_life_threatening else OTHER_SUSAR_DAYS


def is_late_entry(
    recorded_at: dt.datetime, site_aware_at: dt.datetime | None, late_entry_hours: int
) -> bool | None:
    """Entered more than `late_entry_hours` after the site knew (None: awareness not given or
    not usable)."""
    entered, aware = as_utc(recorded_at), as_utc(site_aware_at)
    if entered is None or aware is None:
        return None
    return entered - aware > dt.timedelta(hours=late_entry_hours)


def acknowledgements(events: Iterable[Effective]) -> tuple[Acknowledgement, ...]:
    """The `sae_acknowledged` entries of a patient's effective history, in ledger order."""
    return tuple(
        Acknowledgement(
            entry.event.data.alert_id,
            entry.seq,
            entry.event.recorded_at,
            entry.event.data.expedited_report_submitted_on,
        )
        for entry in sorted(events, key=lambda item: item.seq)
        if isinstance(entry.event, SaeAcknowledged)
    )


def with_acknowledgements(clock: SaeClock, acknowledged: Iterable[Acknowledgement]) -> SaeClock:
    """The clock with its own acknowledgements (matched by alert id, case-insensitively) and
    the earliest expedited-report submission date recorded with them."""
    mine = [ack for ack in acknowledged if ack.alert_id.lower() == clock.alert_id.lower()]
    submitted = [
        ack.expedited_report_submitted_on
        for ack in mine
        if ack.expedited_report_submitted_on is not None
    ]
    return replace(
        clock,
        acknowledgement_seqs=tuple(ack.seq for ack in mine),
        acknowledged_at=mine[0].recorded_at if mine else None,
        report_submitted_on=min(submitted, default=None),
    )


def site_awareness_flags(
    site_aware_at: dt.datetime | None, entered: dt.datetime | None, onset: dt.date
) -> tuple[str, ...]:
    """What is wrong with a site's awareness instant, if anything (data-quality flags)."""
    if site_aware_at is None:
        return ()
    aware = as_utc(site_aware_at)
    if aware is None:
        return (SITE_AWARE_AT_UNUSABLE,)
    flags = []
    if entered is not None and aware > entered:
        flags.append(SITE_AWARE_AFTER_ENTRY)
    if aware.date() < add_days(onset, -1):  # a day's slack for time zones
        flags.append(SITE_AWARE_BEFORE_ONSET)
    return tuple(flags)


def alert_clock(
    episode: AeEpisode,
    *,
    alert: str,
    trigger_event_id: str,
    trigger_seq: int,
    trigger: str,
    recorded_at: dt.datetime | None,
    site_aware_at: dt.datetime | None,
    parameters: ProtocolParameters,
) -> SaeClock:
    """The clock of an alert raised by the entry `trigger_event_id` for the episode as it
    stood then: day 0 = that entry's `recorded_at` (UTC date). Total: what cannot be computed
    is None and flagged, so the alert is raised all the same (DOMAIN.md)."""
    awareness_at = as_utc(recorded_at)
    awareness_on = None if awareness_at is None else awareness_at.date()
    days = expedited_days(episode.susar, episode.fatal_or_life_threatening)
    quality: tuple[str, ...] = () if awareness_at is not None else (AWARENESS_UNKNOWN,)
    quality += site_awareness_flags(site_aware_at, awareness_at, episode.onset)
    usable_site_aware_at = None if SITE_AWARE_AT_UNUSABLE in quality else site_aware_at
    late = None
    if awareness_at is not None:
        late = is_late_entry(awareness_at, usable_site_aware_at, parameters.late_entry_hours)
    return SaeClock(
        alert_id=alert,
        ae_event_id=episode.ae_event_id,
        ae_seq=episode.seq,
        trigger_event_id=trigger_event_id,
        trigger_seq=trigger_seq,
        trigger=trigger,
        awareness_at=awareness_at,
        site_aware_at=as_utc(usable_site_aware_at),
        late_entry=late,
        susar=episode.susar,
        fatal_or_life_threatening=episode.fatal_or_life_threatening,
        expedited_days=days,
        acknowledgement_due=_plus_days(awareness_on, ACKNOWLEDGEMENT_DAYS),
        report_due=None if days is None else _plus_days(awareness_on, days),
        acknowledgement_seqs=(),
        acknowledged_at=None,
        report_submitted_on=None,
        data_quality=quality,
        not_yet_assessed=episode.not_yet_assessed,
    )


def sae_clock(
    episode: AeEpisode,
    acknowledged: Iterable[Acknowledgement],
    parameters: ProtocolParameters,
) -> SaeClock | None:
    """The initial alert of an AE and its deadlines, or None if it never became serious.

    Raised by the entry that first made it serious (a serious report, an update adding
    seriousness or raising the grade to 4/5, a linked death); SUSAR status and fatality are
    those of the episode as given — `projections.safety.sae_alerts` passes the episode as it stood
    when the alert was raised, so a later escalation moves no deadline of this alert but
    raises a follow-up of its own.
    """
    onset = episode.serious_onset
    if onset is None:
        return None
    clock = alert_clock(
        episode,
        alert=alert_id(onset.event_id),
        trigger_event_id=onset.event_id,
        trigger_seq=onset.seq,
        trigger=onset.trigger,
        recorded_at=onset.recorded_at,
        site_aware_at=onset.site_aware_at,
        parameters=parameters,
    )
    return with_acknowledgements(clock, acknowledged)


def sae_clocks(
    episodes: Iterable[AeEpisode],
    events: Iterable[Effective],
    parameters: ProtocolParameters,
) -> tuple[SaeClock, ...]:
    """The initial alert of every SAE among `episodes`, in the order the AEs were reported
    (each as the episode stands now; the alert history itself is `projections.safety.sae_alerts`)."""
    acknowledged = acknowledgements(events)
    clocks = (sae_clock(episode, acknowledged, parameters) for episode in episodes)
    return tuple(clock for clock in clocks if clock is not None)

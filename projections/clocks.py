"""SAE alerts and their clocks (DOMAIN.md "Serious AEs and clocks"; ICH E2A, 21 CFR 312.32).

Rules, all in calendar days counted on UTC dates, day 0 = the date the sponsor first knew
(the ledger's `recorded_at` of the entry that first made the AE serious):
- every SAE raises one alert, `alert_id` = "sae-<trigger event_id>", to be acknowledged by a
  safety officer (`sae_acknowledged`) by the end of day 1;
- a SUSAR also needs an expedited report: by day 7 if fatal or life-threatening, else day 15;
- the site must enter the SAE within `late_entry_hours` (24) of its own awareness; a longer gap
  flags the entry late (exactly 24 h is on time).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass

from events import ProtocolParameters, SaeAcknowledged
from projections.calendar import add_days, as_utc
from projections.history import Effective
from projections.safety import AeEpisode, SeriousTrigger

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
    """The alert of one SAE and its deadlines."""

    alert_id: str
    ae_event_id: str
    ae_seq: int
    trigger_event_id: str
    trigger_seq: int
    trigger: SeriousTrigger
    awareness_at: dt.datetime
    site_aware_at: dt.datetime | None
    late_entry: bool | None
    susar: bool
    fatal_or_life_threatening: bool
    expedited_days: int | None
    acknowledgement_due: dt.date
    report_due: dt.date | None
    acknowledgement_seqs: tuple[int, ...]
    acknowledged_at: dt.datetime | None
    report_submitted_on: dt.date | None

    @property
    def awareness_on(self) -> dt.date:
        return self.awareness_at.date()

    @property
    def acknowledged(self) -> bool:
        return bool(self.acknowledgement_seqs)

    def acknowledgement_overdue(self, now: dt.datetime) -> bool:
        """Not acknowledged and the acknowledgement day has passed (UTC)."""
        return not self.acknowledged and _utc(now).date() > self.acknowledgement_due

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


def _utc(moment: dt.datetime) -> dt.datetime:
    return as_utc(moment)


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
    """Entered more than `late_entry_hours` after the site knew (None: awareness not given)."""
    if site_aware_at is None:
        return None
    return _utc(recorded_at) - _utc(site_aware_at) > dt.timedelta(hours=late_entry_hours)


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


def sae_clock(
    episode: AeEpisode,
    acknowledged: Iterable[Acknowledgement],
    parameters: ProtocolParameters,
) -> SaeClock | None:
    """The alert and deadlines of an AE, or None if it never became serious.

    One alert per AE, raised by the entry that first made it serious (a serious report, an
    update adding seriousness or raising the grade to 4/5, a linked death). SUSAR status and
    fatality are read from everything the episode holds; the clock still counts from the first
    serious entry (DOMAIN.md: day 0 = the first serious report). Raises ValueError when that
    entry has no `recorded_at` — only stored events carry one.
    """
    onset = episode.serious_onset
    if onset is None:
        return None
    if onset.recorded_at is None:
        raise ValueError(f"event {onset.event_id} is not stored yet: it has no recorded_at")
    awareness_at = _utc(onset.recorded_at)
    awareness_on = awareness_at.date()
    days = expedited_days(episode.susar, episode.fatal_or_life_threatening)
    alert = alert_id(onset.event_id)
    mine = [ack for ack in acknowledged if ack.alert_id.lower() == alert.lower()]
    submitted = [
        ack.expedited_report_submitted_on
        for ack in mine
        if ack.expedited_report_submitted_on is not None
    ]
    return SaeClock(
        alert_id=alert,
        ae_event_id=episode.ae_event_id,
        ae_seq=episode.seq,
        trigger_event_id=onset.event_id,
        trigger_seq=onset.seq,
        trigger=onset.trigger,
        awareness_at=awareness_at,
        site_aware_at=onset.site_aware_at,
        late_entry=is_late_entry(awareness_at, onset.site_aware_at, parameters.late_entry_hours),
        susar=episode.susar,
        fatal_or_life_threatening=episode.fatal_or_life_threatening,
        expedited_days=days,
        acknowledgement_due=add_days(awareness_on, ACKNOWLEDGEMENT_DAYS),
        report_due=None if days is None else add_days(awareness_on, days),
        acknowledgement_seqs=tuple(ack.seq for ack in mine),
        acknowledged_at=mine[0].recorded_at if mine else None,
        report_submitted_on=min(submitted, default=None),
    )


def sae_clocks(
    episodes: Iterable[AeEpisode],
    events: Iterable[Effective],
    parameters: ProtocolParameters,
) -> tuple[SaeClock, ...]:
    """Every SAE alert of one patient, in the order the AEs were reported."""
    acknowledged = acknowledgements(events)
    clocks = (sae_clock(episode, acknowledged, parameters) for episode in episodes)
    return tuple(clock for clock in clocks if clock is not None)

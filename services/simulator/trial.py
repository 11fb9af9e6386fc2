"""The trial simulator behind `make demo` and the tests: sites, patients and their submissions.

`generate_trial` is pure: a seed in, the exact JSON submissions of every site out (no IO, no
clock; `today` is a parameter). `submit_trial` does the IO through an injected client, the
sponsor's protocol parameters first, then every site at once, like real sites would.
"""

from __future__ import annotations

import asyncio
import copy
import random
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any, Protocol

from events.envelope import SPONSOR_SITE, TRIAL_PATIENT
from services.simulator.course import Course, Entry, Event, Fate

CLINICAL_SPAN_DAYS = 730  # "up to approximately 2 years"
ENROLLMENT_DAYS = 365
REPORTED_REJECTIONS = 20


@dataclass(frozen=True)
class SimulatedTrial:
    """A whole simulated trial: the parameters event and each site's submissions in order."""

    trial_id: str
    seed: int
    cutoff: date
    parameters_event: Event
    site_events: dict[str, list[Event]]

    def all_events(self) -> list[Event]:
        """Every submission: the protocol parameters first, then site by site in order."""
        return [self.parameters_event, *(e for events in self.site_events.values() for e in events)]

    def counts_by_type(self) -> dict[str, int]:
        return dict(Counter(event["type"] for event in self.all_events()))

    def patient_ids(self) -> list[str]:
        return sorted({e["patient_id"] for events in self.site_events.values() for e in events})


def generate_trial(
    seed: int = 7,
    sites: int = 6,
    patients: int = 72,
    trial_id: str = "HAIC-PD1-LEN",
    start: date = date(2024, 1, 8),
    today: date | None = None,
) -> SimulatedTrial:
    """Simulate `patients` patients enrolled over 12 months at `sites` sites and followed for
    up to about 2 years from `start`, truncated at `today` (DOMAIN.md "Trial facts").

    Deterministic per seed. Every event decodes strictly and obeys the writer's patient rules:
    enrollment first, nothing dated after `today` or after the patient's death, corrections
    and retractions after the event they point at.
    """
    master = random.Random(seed)
    horizon = start + timedelta(days=CLINICAL_SPAN_DAYS)
    cutoff = min(today or horizon, horizon)
    site_ids = [f"site{n:02d}" for n in range(1, sites + 1)]
    declared_on = min(start - timedelta(days=14), cutoff)
    parameters = _parameters_event(master, trial_id, site_ids, declared_on)
    enrollments = _enrollments(master, site_ids, patients, start, cutoff)
    fates = _fates(master, enrollments)
    site_entries: dict[str, list[tuple[date, int, int, Event]]] = {site: [] for site in site_ids}
    for index, (enrolled_on, site_id, patient_id) in enumerate(enrollments):
        course = Course(
            random.Random(master.getrandbits(64)),
            trial_id=trial_id,
            site_id=site_id,
            patient_id=patient_id,
            enrolled_on=enrolled_on,
            cutoff=cutoff,
            fate=fates.get(patient_id, Fate()),
        )
        course.build()
        _add_mistakes(course)
        site_entries[site_id].extend((e.entered, index, e.n, e.event) for e in course.entries)
    site_events = {
        site: [event for *_, event in sorted(entries, key=lambda entry: entry[:3])]
        for site, entries in site_entries.items()
    }
    return SimulatedTrial(trial_id, seed, cutoff, parameters, site_events)


def _parameters_event(rng: random.Random, trial_id: str, site_ids: list[str], on: date) -> Event:
    return {
        "event_id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
        "type": "protocol_parameters_set", "schema_version": 1, "trial_id": trial_id,
        "site_id": SPONSOR_SITE, "patient_id": TRIAL_PATIENT, "occurred_on": on.isoformat(),
        "recorded_by": "sponsor.statistician",
        "data": {"version": 1, "title": "HAIC + PD-1 inhibitor + lenvatinib, BCLC B/C HCC",
                 "parameters": {"sites": site_ids}},
    }  # fmt: skip


def _enrollments(
    rng: random.Random, site_ids: list[str], patients: int, start: date, cutoff: date
) -> list[tuple[date, str, str]]:
    """Enrollment date, site and patient id; some sites recruit faster than others, every
    site recruits at least one patient, numbers follow enrollment order within a site."""
    weights = [rng.uniform(0.5, 1.5) for _ in site_ids]
    chosen = site_ids + rng.choices(site_ids, weights, k=max(0, patients - len(site_ids)))
    dated = sorted(
        (start + timedelta(days=rng.randint(0, ENROLLMENT_DAYS - 1)), site)
        for site in chosen[:patients]
    )
    numbers: Counter[str] = Counter()
    enrollments = []
    for enrolled_on, site in dated:
        if enrolled_on > cutoff:
            continue
        numbers[site] += 1
        enrollments.append((enrolled_on, site, f"S{site[-2:]}-P{numbers[site]:03d}"))
    return enrollments


def _fates(rng: random.Random, enrollments: list[tuple[date, str, str]]) -> dict[str, Fate]:
    """A few fatal AEs, consent withdrawals and losses to follow-up, among patients enrolled
    early enough to show them."""
    early = [patient_id for _, _, patient_id in enrollments[: max(1, len(enrollments) // 2)]]
    rng.shuffle(early)
    n = len(enrollments)
    counts = (max(2, round(n * 0.04)), max(1, round(n * 0.03)), max(1, round(n * 0.03)))
    kinds = [Fate(fatal_ae=True)] * counts[0] + [Fate(consent_withdrawal=True)] * counts[1]
    kinds += [Fate(lost_to_follow_up=True)] * counts[2]
    return dict(zip(early, kinds, strict=False))


def _add_mistakes(course: Course) -> None:
    """Some entries mistyped and later corrected with the full true data (ALCOA+: the old
    value stays in the trail); now and then an entry typed twice and the copy retracted."""
    r = course.rng
    untouched = []
    for entry in list(course.entries):
        wrong = _mistype(r, entry.event) if r.random() < 0.05 else None
        if wrong is None:
            untouched.append(entry)
            continue
        true_data, entry.event["data"] = entry.event["data"], wrong[0]
        _follow_up(course, entry, "event_corrected", {"data": true_data}, reason=wrong[1])
    kinds = ("follow_up_contact", "infusion_given", "ae_reported")
    candidates = [e for e in untouched if e.event["type"] in kinds]
    candidates = [e for e in candidates if not e.event["data"].get("serious")]
    if candidates and r.random() < 0.15:
        original = r.choice(candidates).event
        on = date.fromisoformat(original["occurred_on"])
        data = copy.deepcopy(original["data"])
        course.emit(original["type"], on, data, after=original, lag=r.randint(1, 20))
        reason = f"duplicate entry of {original['type']} {original['event_id']}"
        _follow_up(course, course.entries[-1], "event_retracted", {}, reason=reason)


def _follow_up(
    course: Course, target: Entry, kind: str, data: dict[str, Any], *, reason: str
) -> None:
    """A correction or retraction of `target`, typed one week to three months after it."""
    on = date.fromisoformat(target.event["occurred_on"])
    lag = (target.entered - on).days + course.rng.randint(7, 90)
    data = {"target_event_id": target.event["event_id"], **data}
    course.emit(kind, on, data, after=target.event, lag=lag, reason=reason)


def _mistype(r: random.Random, event: Event) -> tuple[dict[str, Any], str] | None:
    """A plausible typing slip in the event's data, with the reason its correction gives."""
    data = copy.deepcopy(event["data"])
    match event["type"]:
        case "scan_read" if data["timepoint"] == "follow_up":
            lesion = next(les for les in data["lesions"] if les["role"] == "target")
            size_key = "short_axis_mm" if lesion["is_lymph_node"] else "longest_diameter_mm"
            lesion[size_key] = round(lesion[size_key] + 10.0, 1)
            reason = f"transcription error: {lesion['lesion_id']} {size_key} off by 10 mm"
        case "infusion_given":
            data["dose"] = 58.0 if data["dose"] == 85.0 else 20.0
            reason = "transcription error in dose"
        case "ae_reported" if data["grade"] <= 2 and not data["serious"]:
            data["grade"] += 1
            reason = f"transcription error: source document shows grade {data['grade'] - 1}"
        case "follow_up_contact":
            data["method"] = "visit" if data["method"] == "phone" else "phone"
            reason = "contact method entered wrongly"
        case "enrolled":
            data["age_years"] += r.choice((-10, 10))
            reason = "transcription error in age"
        case _:
            return None
    return data, reason


class SiteClientLike(Protocol):
    """What the simulator needs from a site client (services/client/site.py, or a fake)."""

    async def submit_batch(self, events: list[dict[str, Any]]) -> list[dict[str, Any]]: ...


@dataclass
class SubmissionReport:
    """How the intake answered: counts per status and the first rejected replies."""

    accepted: int = 0
    duplicate: int = 0
    rejected: int = 0
    rejected_replies: list[dict[str, Any]] = field(default_factory=list)

    @property
    def submitted(self) -> int:
        return self.accepted + self.duplicate + self.rejected

    def record(self, replies: list[dict[str, Any]]) -> None:
        for reply in replies:
            status = reply.get("status")
            if status == "accepted":
                self.accepted += 1
            elif status == "duplicate":
                self.duplicate += 1
            else:
                self.rejected += 1
                if len(self.rejected_replies) < REPORTED_REJECTIONS:
                    self.rejected_replies.append(reply)


async def submit_trial(
    trial: SimulatedTrial,
    client_for_site: Callable[[str], SiteClientLike],
    *,
    batch_size: int = 20,
    concurrency: int = 6,
    progress: Callable[[int], None] | None = None,
) -> SubmissionReport:
    """Submit the parameters event, then every site concurrently, each in its own order.

    One task per site sends its events in batches, one batch at a time (a site's order is
    what keeps enrollment before the rest and corrections after their targets); at most
    `concurrency` batches are in flight across sites. `progress` gets the number of events
    each answered batch held.
    """
    report = SubmissionReport()
    report.record(await client_for_site(SPONSOR_SITE).submit_batch([trial.parameters_event]))
    if progress is not None:
        progress(1)
    in_flight = asyncio.Semaphore(concurrency)

    async def run_site(site_id: str, events: list[Event]) -> None:
        client = client_for_site(site_id)
        for first in range(0, len(events), batch_size):
            batch = events[first : first + batch_size]
            async with in_flight:
                replies = await client.submit_batch(batch)
            report.record(replies)
            if progress is not None:
                progress(len(batch))

    async with asyncio.TaskGroup() as group:
        for site_id, events in trial.site_events.items():
            group.create_task(run_site(site_id, events))
    return report

"""AE incidence tables over the treated population (DOMAIN.md "Adverse events", "Tables").

Every count is of patients, not events: N (%) of treated patients (those with a STARTDT) with
at least one treatment-emergent AE (TEAE) in the row, each patient counted once, at the worst
grade they reached within that row. Every row carries the ledger seqs behind it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from types import MappingProxyType

from scipy.stats import binomtest

from events import ProtocolParameters
from projections.common.calendar import add_days
from projections.safety.episodes import AGENTS, AeEpisode, PatientSafety, TreatmentDates

PatientKey = tuple[str, str, str]
UNKNOWN_SOC = "(term not in CTCAE v5.0)"


def _exact_ci(k: int, n: int, conf_level: float = 0.95) -> tuple[float, float]:
    # Clopper–Pearson; projections.statistics.binomial was not there yet when this was written.
    interval = binomtest(k, n).proportion_ci(confidence_level=conf_level, method="exact")
    return (float(interval.low), float(interval.high))


@dataclass(frozen=True, slots=True)
class Count:
    """k of N treated patients, the exact 95 % CI when the rate is headlined, and the seqs."""

    patients: int
    n: int
    patient_keys: tuple[PatientKey, ...]
    seqs: tuple[int, ...]
    ci: tuple[float, float] | None = None

    @property
    def percent(self) -> float | None:
        return None if self.n == 0 else 100 * self.patients / self.n


@dataclass(frozen=True, slots=True)
class GradeCounts:
    """Any grade, each worst grade 1..5 (`by_grade[g - 1]`) and grade ≥ 3."""

    any_grade: Count
    by_grade: tuple[Count, Count, Count, Count, Count]
    grade_3_or_more: Count

    def grade(self, grade: int) -> Count:
        return self.by_grade[grade - 1]


@dataclass(frozen=True, slots=True)
class TermRow:
    soc: str
    term: str
    counts: GradeCounts


@dataclass(frozen=True, slots=True)
class SocRow:
    soc: str
    counts: GradeCounts
    terms: tuple[TermRow, ...]


@dataclass(frozen=True, slots=True)
class IncidenceTables:
    n_treated: int
    overall: GradeCounts
    by_soc: tuple[SocRow, ...]
    serious: Count
    susar: Count
    related: Mapping[str, Count]
    leading_to_dose_modification: Count
    leading_to_discontinuation: Count
    deaths: Count


Pair = tuple[PatientKey, AeEpisode]


def _count(pairs: Iterable[Pair], n: int, *, headline: bool = False) -> Count:
    chosen = list(pairs)
    keys = tuple(sorted({key for key, _ in chosen}))
    seqs = tuple(sorted({seq for _, episode in chosen for seq in episode.seqs}))
    ci = _exact_ci(len(keys), n) if headline and n > 0 else None
    return Count(len(keys), n, keys, seqs, ci)


def _grade_counts(pairs: list[Pair], n: int, *, headline: bool = False) -> GradeCounts:
    """Each patient at the worst grade of their AEs in `pairs` (CTCAE: one count per patient)."""
    worst: dict[PatientKey, int] = {}
    for key, episode in pairs:
        worst[key] = max(worst.get(key, 0), episode.worst_grade)
    by_grade = tuple(
        _count(((key, ep) for key, ep in pairs if ep.worst_grade == worst[key] == grade), n)
        for grade in range(1, 6)
    )
    return GradeCounts(
        any_grade=_count(pairs, n, headline=headline),
        by_grade=(by_grade[0], by_grade[1], by_grade[2], by_grade[3], by_grade[4]),
        grade_3_or_more=_count(
            ((key, ep) for key, ep in pairs if ep.worst_grade >= 3), n, headline=headline
        ),
    )


def _ranked(groups: Mapping[str, list[Pair]]) -> list[tuple[str, list[Pair]]]:
    # Most frequent first (patients), then alphabetical: a stable, conventional order.
    return sorted(groups.items(), key=lambda item: (-len({k for k, _ in item[1]}), item[0]))


def _soc_rows(pairs: list[Pair], n: int) -> tuple[SocRow, ...]:
    by_soc: dict[str, list[Pair]] = {}
    for key, episode in pairs:
        by_soc.setdefault(episode.soc or UNKNOWN_SOC, []).append((key, episode))
    rows: list[SocRow] = []
    for soc, members in _ranked(by_soc):
        by_term: dict[str, list[Pair]] = {}
        for key, episode in members:
            by_term.setdefault(episode.term, []).append((key, episode))
        terms = tuple(
            TermRow(soc, term, _grade_counts(term_pairs, n))
            for term, term_pairs in _ranked(by_term)
        )
        rows.append(SocRow(soc, _grade_counts(members, n), terms))
    return tuple(rows)


def _related_to(agent: str) -> Callable[[AeEpisode], bool]:
    return lambda episode: agent in episode.related_agents


def as_of_cutoff(patient: PatientSafety, parameters: ProtocolParameters) -> PatientSafety:
    """The patient's AEs and death as the analysis at the data cut-off sees them (DOMAIN.md
    "Time origin": the cut-off censors everything after it).

    Treated only with a STARTDT on or before the cut-off; a last dose after it means the
    patient was on treatment at the cut-off (the TEAE window is open). AEs with onset after
    the cut-off and a death after it do not exist; an AE keeps the grades recorded on or
    before the cut-off (its worst grade is the worst of those), and its treatment-emergent
    flag is the rule of `projections.safety.episodes.ae_episodes` over those grades: onset in the
    window from STARTDT to the last dose + `teae_window_days`, or a pre-existing AE whose
    grade rose inside it. An AE that became serious only after the cut-off (by a grade 4/5
    recorded after it, or a death after it) is not serious (nor a SUSAR) at the cut-off.
    """
    cutoff = parameters.data_cutoff
    if cutoff is None:
        return patient
    start, last = patient.dates.start_date, patient.dates.last_dose_on
    dates = TreatmentDates(
        None if start is None or start > cutoff else start,
        None if last is not None and last > cutoff else last,
    )

    def in_window(day: dt.date) -> bool:
        if dates.start_date is None or day < dates.start_date:
            return False
        end = dates.last_dose_on
        return end is None or day <= add_days(end, parameters.teae_window_days)

    episodes: list[AeEpisode] = []
    for episode in patient.episodes:
        if episode.onset > cutoff:
            continue
        grades = tuple(g for g in episode.grades if g.occurred_on <= cutoff) or episode.grades[:1]
        later = {g.seq for g in episode.grades if g not in grades}
        worsened = episode.pre_existing and any(
            g.grade > grades[0].grade and in_window(g.occurred_on) for g in grades[1:]
        )
        episode = replace(
            episode,
            grades=grades,
            worst_grade=max(g.grade for g in grades),
            treatment_emergent=in_window(episode.onset) or worsened,
        )
        if _serious_only_after(episode, later, patient, cutoff):
            episode = replace(episode, serious=False, seriousness=(), susar=False)
        episodes.append(episode)
    death = patient.death
    return replace(
        patient,
        dates=dates,
        episodes=tuple(episodes),
        death=None if death is None or death.occurred_on > cutoff else death,
    )


def _serious_only_after(
    episode: AeEpisode, later_grades: set[int], patient: PatientSafety, cutoff: dt.date
) -> bool:
    # The entry that first made the AE serious, when its clinical date is known: a grade
    # record (grade 4/5) after the cut-off, or a linked death after it. (Seriousness added by
    # an update without a grade carries no date here and stands.)
    onset = episode.serious_onset
    if onset is None:
        return False
    if onset.trigger == "death":
        return patient.death is not None and patient.death.occurred_on > cutoff
    return onset.seq in later_grades


def incidence_tables(
    patients: Iterable[PatientSafety], parameters: ProtocolParameters | None = None
) -> IncidenceTables:
    """The AE tables of DOMAIN.md over the treated population, TEAEs only, as of the data
    cut-off of `parameters` (`as_of_cutoff`; none given: everything recorded).

    Rows: any TEAE and by worst grade 1–5 and grade ≥ 3; by SOC and term × worst grade;
    serious; SUSARs; related (possible/probable/definite) to any agent and per agent; leading
    to dose modification (reduction or interruption); leading to discontinuation (of an agent
    or of all treatment); deaths of treated patients from any cause, at any time up to the
    cut-off. Headline
    rates carry an exact Clopper–Pearson 95 % CI.
    """
    analysed = patients if parameters is None else (as_of_cutoff(p, parameters) for p in patients)
    treated = [patient for patient in analysed if patient.treated]
    n = len(treated)
    teaes: list[Pair] = [
        (patient.patient_key, episode)
        for patient in treated
        for episode in patient.episodes
        if episode.treatment_emergent
    ]

    def where(keep: Callable[[AeEpisode], bool]) -> Count:
        return _count(((key, ep) for key, ep in teaes if keep(ep)), n, headline=True)

    related = {"any": where(lambda ep: bool(ep.related_agents))}
    for agent in AGENTS:
        related[agent] = where(_related_to(agent))
    dead = sorted(
        (patient.patient_key, patient.death.seq) for patient in treated if patient.death is not None
    )
    deaths = Count(
        patients=len(dead),
        n=n,
        patient_keys=tuple(key for key, _ in dead),
        seqs=tuple(sorted(seq for _, seq in dead)),
        ci=_exact_ci(len(dead), n) if n else None,
    )
    return IncidenceTables(
        n_treated=n,
        overall=_grade_counts(teaes, n, headline=True),
        by_soc=_soc_rows(teaes, n),
        serious=where(lambda ep: ep.serious),
        susar=where(lambda ep: ep.susar),
        related=MappingProxyType(related),
        leading_to_dose_modification=where(lambda ep: ep.led_to_dose_modification),
        leading_to_discontinuation=where(lambda ep: ep.led_to_discontinuation),
        deaths=deaths,
    )

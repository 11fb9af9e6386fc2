"""RECIST 1.1 timepoint response, and the lesion-level engine mRECIST shares with it.

Sources: Eisenhauer et al., "New response evaluation criteria in solid tumours: revised RECIST
guideline (version 1.1)", Eur J Cancer 2009 (§3 baseline, §4.3 response, tables 1–3);
DOMAIN.md "Tumour response per timepoint".

Measurements are compared in integer tenths of a millimetre (events reject finer readings),
so every threshold is exact integer arithmetic, never a float comparison. A reader records a
target "too small to measure" as 5.0 mm and a disappeared one as 0.0 mm (RECIST 1.1 appendix
I): the schema needs no flag for either, the number is what the rules read.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Literal

from events import Lesion, ProtocolParameters, PvttAssessment, ScanReadData

CR, PR, SD, PD, NE = "CR", "PR", "SD", "PD", "NE"
NON_CR_NON_PD = "NON-CR/NON-PD"
NODES = "lymph_node"  # RECIST 1.1 §3.2.1: all lymph nodes together count as one organ
MAX_TARGETS, MAX_TARGETS_PER_ORGAN = 5, 2

NonTargetState = Literal["gone", "present", "missing", "progressed"]


def tenths(mm: float) -> int:
    """A measurement as an integer number of tenths of a millimetre."""
    return round(mm * 10)


def _tenths(mm: float | None) -> int | None:
    return None if mm is None else tenths(mm)


@dataclass(frozen=True, slots=True)
class Recist:
    """The RECIST 1.1 lesion rules; `MRecist` overrides measurement and new-lesion rules."""

    name: str = "RECIST 1.1"
    pd_min_abs: int = 50

    @classmethod
    def from_parameters(cls, params: ProtocolParameters) -> Recist:
        return cls(pd_min_abs=tenths(params.recist_pd_min_abs_mm))

    def eligible(self, lesion: Lesion) -> bool:
        """Whether a baseline lesion is tumour at all under this criterion."""
        return True

    def size(self, lesion: Lesion, node: bool) -> int | None:
        """RECIST 1.1 §3.2: longest diameter, short axis for lymph nodes."""
        if lesion.not_assessed:
            return None
        return _tenths(lesion.short_axis_mm if node else lesion.longest_diameter_mm)

    def measurable(self, lesion: Lesion) -> bool:
        """RECIST 1.1 §3.1.1: ≥ 10 mm; a node needs a short axis ≥ 15 mm."""
        size = self.size(lesion, lesion.is_lymph_node)
        return size is not None and size >= (150 if lesion.is_lymph_node else 100)

    def node_normal(self, lesion: Lesion) -> int:
        """Short axis (tenths) below which a node is normal: RECIST 1.1 §4.3.1, < 10 mm."""
        return 100

    def non_target_state(self, lesion: Lesion | None, baseline: Lesion) -> NonTargetState:
        """RECIST 1.1 §4.3.2: gone (nodes back below 10 mm), present, or unequivocally worse."""
        if lesion is None or lesion.not_assessed or lesion.status in (None, "not_assessed"):
            return "missing"
        if lesion.status == "unequivocal_progression":
            return "progressed"
        if lesion.status == "absent" or self._normal_node(lesion, baseline):
            return "gone"
        return "present"

    def _normal_node(self, lesion: Lesion, baseline: Lesion) -> bool:
        return (
            baseline.is_lymph_node
            and lesion.short_axis_mm is not None
            and tenths(lesion.short_axis_mm) < self.node_normal(baseline)
        )

    def new_counts(self, lesion: Lesion, first: Lesion) -> bool:
        """RECIST 1.1 §4.3.2: any unequivocal new lesion is progression, whatever its size."""
        return True

    def pvtt_state(self, pvtt: PvttAssessment | None) -> NonTargetState:
        """How a baseline tumour thrombus reads as a non-target (unused by RECIST 1.1)."""
        return "missing"

    def pvtt_is_non_target(self, baseline: ScanReadData) -> bool:
        return False


@dataclass(frozen=True, slots=True)
class LesionBaseline:
    """The baseline lesion set one criterion works from."""

    targets: tuple[Lesion, ...]
    sizes: tuple[int, ...]
    non_targets: tuple[Lesion, ...]
    pvtt_non_target: bool
    measurable: bool
    flags: tuple[str, ...]

    @property
    def target_sum(self) -> int | None:
        return sum(self.sizes) if self.targets else None

    @property
    def has_disease(self) -> bool:
        return bool(self.targets or self.non_targets or self.pvtt_non_target)


def select_baseline(rules: Recist, data: ScanReadData) -> LesionBaseline:
    """Baseline targets and non-targets with the RECIST 1.1 §3.3 selection checks.

    At most 5 targets and 2 per organ (nodes one organ), each measurable: a baseline that
    breaks these is flagged, never rejected, and the response is still computed from it.
    A target without a baseline measurement cannot anchor a sum and is dropped (flagged).
    """
    flags: list[str] = []
    targets: list[Lesion] = []
    sizes: list[int] = []
    non_targets: list[Lesion] = []
    for lesion in data.lesions:
        if not rules.eligible(lesion):
            flags.append(f"not_malignant_by_size:{lesion.lesion_id}")
        elif lesion.role == "target":
            size = rules.size(lesion, lesion.is_lymph_node)
            if size is None:
                flags.append(f"baseline_target_not_measured:{lesion.lesion_id}")
                continue
            if not rules.measurable(lesion):
                flags.append(f"target_not_measurable:{lesion.lesion_id}")
            targets.append(lesion)
            sizes.append(size)
        elif lesion.role == "non_target":
            non_targets.append(lesion)
        else:
            flags.append(f"new_lesion_at_baseline:{lesion.lesion_id}")
    if len(targets) > MAX_TARGETS:
        flags.append("more_than_5_targets")
    organs = Counter(NODES if t.is_lymph_node else t.organ for t in targets)
    flags.extend(
        f"more_than_2_targets_in:{organ}"
        for organ, count in sorted(organs.items())
        if count > MAX_TARGETS_PER_ORGAN
    )
    return LesionBaseline(
        targets=tuple(targets),
        sizes=tuple(sizes),
        non_targets=tuple(non_targets),
        pvtt_non_target=rules.pvtt_is_non_target(data),
        measurable=any(rules.measurable(t) for t in targets),
        flags=tuple(flags),
    )


def is_progression(rules: Recist, total: int, nadir: int) -> bool:
    """Target PD: the sum rose ≥ 20 % over the nadir and by at least the absolute minimum.

    RECIST 1.1 §4.3.1 (5 mm); mRECIST has no absolute clause (parameter, default 0). A strict
    rise is required so that a sum of 0 over a nadir of 0 is never progression.
    """
    rise = total - nadir
    return rise > 0 and 5 * rise >= nadir and rise >= rules.pd_min_abs


def target_response(
    rules: Recist, baseline: LesionBaseline, sizes: Sequence[int | None], nadir: int
) -> str:
    """RECIST 1.1 §4.3.1 table order: PD (even with targets missing), NE, CR, PR, SD.

    PR is a sum ≤ 70 % of the baseline sum (a decrease of at least 30 %, inclusive).
    """
    known = sum(size for size in sizes if size is not None)
    if is_progression(rules, known, nadir):
        return PD
    if any(size is None for size in sizes):
        return NE
    if all(
        size < rules.node_normal(target) if target.is_lymph_node else size == 0
        for target, size in zip(baseline.targets, sizes, strict=True)
        if size is not None
    ):
        return CR
    base = sum(baseline.sizes)
    if 10 * known <= 7 * base:
        return PR
    return SD


def non_target_response(states: Sequence[NonTargetState]) -> str | None:
    """RECIST 1.1 §4.3.2: PD on unequivocal progression, CR when all gone, NE when any unread."""
    if not states:
        return None
    if "progressed" in states:
        return PD
    if all(state == "gone" for state in states):
        return CR
    if "missing" in states:
        return NE
    return NON_CR_NON_PD


def overall_response(target: str | None, non_target: str | None, new_lesion: bool) -> str:
    """RECIST 1.1 tables 1 and 2 (non-target-only disease), also used by mRECIST."""
    if new_lesion or PD in (target, non_target):
        return PD
    if target is None:
        return non_target if non_target is not None else NE
    if target == CR:
        return CR if non_target in (CR, None) else PR
    if target in (PR, SD):
        return target
    return NE


@dataclass(frozen=True, slots=True)
class Assessment:
    """One criterion's reading of one follow-up scan (sizes in tenths of a mm)."""

    target_response: str | None
    non_target_response: str | None
    new_lesion: bool
    overall: str
    target_sum: int | None
    pct_from_baseline: Fraction | None
    pct_from_nadir: Fraction | None
    pd_date: dt.date | None
    intrahepatic_pd: bool = False
    extrahepatic_pd: bool = False
    flags: tuple[str, ...] = ()


def percent_change(value: int, reference: int | None) -> Fraction | None:
    if reference is None or reference == 0:
        return None
    return Fraction(100 * (value - reference), reference)


@dataclass(frozen=True, slots=True)
class NewLesion:
    """A new lesion counting as progression at a timepoint, and the date PD is dated from."""

    lesion: Lesion
    since: dt.date
    redated: bool


def counting_new_lesions(
    rules: Recist, scans: Sequence[tuple[dt.date, ScanReadData]]
) -> tuple[dict[str, NewLesion], ...]:
    """Per follow-up scan, the new lesions that count as PD under `rules`.

    RECIST 1.1 §4.3.2: an equivocal new lesion is not PD; if a later scan confirms it, PD is
    dated at the scan where it was first seen, so that earlier timepoint is re-derived as PD
    (as is every sighting up to the confirmation). A lesion is followed by its `lesion_id`.
    """
    sightings: dict[str, list[tuple[int, Lesion]]] = {}
    for index, (_, data) in enumerate(scans):
        for lesion in data.lesions:
            if lesion.role == "new" and not lesion.not_assessed:
                sightings.setdefault(lesion.lesion_id, []).append((index, lesion))
    counting: list[dict[str, NewLesion]] = [{} for _ in scans]
    for lesion_id, seen in sightings.items():
        first_index, first = seen[0]
        confirmed = [
            index
            for index, lesion in seen
            if not lesion.equivocal and rules.new_counts(lesion, first)
        ]
        if not confirmed:
            continue
        redated = first.equivocal
        since = scans[first_index if redated else confirmed[0]][0]
        for index, lesion in seen:
            if index in confirmed or (redated and index < confirmed[0]):
                early = index < confirmed[0]
                counting[index][lesion_id] = NewLesion(lesion, since, early)
    return tuple(counting)


def assess_lesions(
    rules: Recist,
    baseline: LesionBaseline | None,
    scans: Sequence[tuple[dt.date, ScanReadData]],
    params: ProtocolParameters,
) -> tuple[Assessment, ...]:
    """Every follow-up scan's response under `rules`, in the order given (date, then seq).

    Nadir = smallest sum so far, baseline included, over timepoints where every target was
    measured (a partial sum understates the disease). Without a baseline every follow-up is
    NE. Intra-hepatic PD uses only intrahepatic targets (their sum against their own nadir,
    by `rules`), non-targets and new lesions. Extra-hepatic PD, symmetric: a new extrahepatic
    lesion (or malignant ascites) and, when `extrahepatic_pd_includes_baseline_progression`,
    progression of baseline extrahepatic disease — its targets' sum against their own nadir
    by the RECIST 1.1 rule (≥ 20 % and ≥ `recist_pd_min_abs_mm`, measured as `rules`
    measure them) or an unequivocally progressing extrahepatic non-target (DOMAIN.md "PFS
    intra-hepatic", "PFS extra-hepatic").
    """
    if baseline is None:
        return tuple(
            Assessment(None, None, False, NE, None, None, None, None, flags=("no_baseline",))
            for _ in scans
        )
    liver = [k for k, t in enumerate(baseline.targets) if t.location == "intrahepatic"]
    beyond = [k for k, t in enumerate(baseline.targets) if t.location == "extrahepatic"]
    nadir = sum(baseline.sizes)
    liver_nadir = sum(baseline.sizes[k] for k in liver)
    beyond_nadir = sum(baseline.sizes[k] for k in beyond)
    recist = Recist.from_parameters(params)
    baseline_eh_counts = params.extrahepatic_pd_includes_baseline_progression
    news = counting_new_lesions(rules, scans)
    results: list[Assessment] = []
    for (day, data), new in zip(scans, news, strict=True):
        by_id = {lesion.lesion_id: lesion for lesion in data.lesions}
        flags = [
            f"unmatched_lesion:{lesion.lesion_id}"
            for lesion in data.lesions
            if lesion.role != "new" and not _in_baseline(baseline, lesion.lesion_id)
        ]
        sizes = [_target_size(rules, by_id.get(t.lesion_id), t) for t in baseline.targets]
        target = target_response(rules, baseline, sizes, nadir) if baseline.targets else None
        states = [rules.non_target_state(by_id.get(n.lesion_id), n) for n in baseline.non_targets]
        pvtt = [rules.pvtt_state(data.pvtt)] if baseline.pvtt_non_target else []
        non_target = non_target_response([*states, *pvtt])
        ascites = data.new_ascites_cytology_proven
        overall = overall_response(target, non_target, bool(new) or ascites)
        if not baseline.has_disease:
            flags.append("no_baseline_disease")
        flags += [f"equivocal_new_lesion_confirmed_later:{k}" for k, n in new.items() if n.redated]
        flags += ["malignant_ascites"] if ascites else []
        measured = [size for size in sizes if size is not None]
        total = sum(measured) if baseline.targets and len(measured) == len(sizes) else None
        liver_sizes = [sizes[k] for k in liver]
        liver_known = sum(size for size in liver_sizes if size is not None)
        intrahepatic_pd = (
            (bool(liver) and is_progression(rules, liver_known, liver_nadir))
            or any(
                s == "progressed"
                for n, s in zip(baseline.non_targets, states, strict=True)
                if n.location == "intrahepatic"
            )
            or any(n.lesion.location == "intrahepatic" for n in new.values())
        )
        beyond_sizes = [sizes[k] for k in beyond]
        beyond_known = sum(size for size in beyond_sizes if size is not None)
        extrahepatic_pd = (
            ascites
            or any(n.lesion.location == "extrahepatic" for n in new.values())
            or (
                baseline_eh_counts
                and (
                    (bool(beyond) and is_progression(recist, beyond_known, beyond_nadir))
                    or any(
                        s == "progressed"
                        for n, s in zip(baseline.non_targets, states, strict=True)
                        if n.location == "extrahepatic"
                    )
                )
            )
        )
        results.append(
            Assessment(
                target_response=target,
                non_target_response=non_target,
                new_lesion=bool(new) or ascites,
                overall=overall,
                target_sum=total,
                pct_from_baseline=None
                if total is None
                else percent_change(total, baseline.target_sum),
                pct_from_nadir=None if total is None else percent_change(total, nadir),
                pd_date=min([day, *(n.since for n in new.values())]) if overall == PD else None,
                intrahepatic_pd=intrahepatic_pd,
                extrahepatic_pd=extrahepatic_pd,
                flags=tuple(flags),
            )
        )
        if total is not None:
            nadir = min(nadir, total)
        if liver and None not in liver_sizes:
            liver_nadir = min(liver_nadir, liver_known)
        if beyond and None not in beyond_sizes:
            beyond_nadir = min(beyond_nadir, beyond_known)
    return tuple(results)


def _in_baseline(baseline: LesionBaseline, lesion_id: str) -> bool:
    return any(lesion.lesion_id == lesion_id for lesion in baseline.targets + baseline.non_targets)


def _target_size(rules: Recist, lesion: Lesion | None, baseline: Lesion) -> int | None:
    if lesion is None or lesion.role != "target":
        return None
    return rules.size(lesion, baseline.is_lymph_node)

"""Simulated scan reads: lesion measurements along a per-patient trajectory, with reader calls.

Measurements are kept in integer tenths of a millimetre (the ledger's resolution). The reader
calls are the response engine's own (`projections.criteria.reader_calls`: RECIST 1.1, mRECIST and the
PVTT defaults of DOMAIN.md "Tumour response per timepoint"), never a copy of its rules; now and
then a reader gets one wrong on purpose, for the engine to flag.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import date
from typing import Any

from events.scans import ScanReadData
from projections.criteria.reader_calls import engine_calls

VP_ORDER = ("Vp1", "Vp2", "Vp3", "Vp4")
WRONG_CALL = {"CR": "PR", "PR": "SD", "SD": "PR", "PD": "SD", "NON-CR/NON-PD": "CR"}
NEW_EXTRAHEPATIC_ORGANS = ("lung", "bone", "adrenal", "peritoneum")


@dataclass(frozen=True)
class ScanPlan:
    """How a patient's tumour behaves: shrink to a floor over `ramp` scans, then hold until
    the assessment `pd_scan` (1-based), where the `pd_kinds` of progression show."""

    ld_floor: float
    viable_floor: float
    ld_ramp: int
    viable_ramp: int
    pd_scan: int | None
    pd_kinds: tuple[str, ...]
    pvtt_vp: str | None
    pvtt_floor: float
    pvtt_clears: bool
    extrahepatic: bool

    @classmethod
    def draw(cls, r: random.Random, *, pvtt_vp: str | None, extrahepatic: bool) -> ScanPlan:
        pattern = r.choices(("responder", "stable", "progressor"), (40, 35, 25))[0]
        pd_scan: int | None
        if pattern == "responder":
            complete = not extrahepatic and r.random() < 0.35
            ld_floor, viable_floor = r.uniform(0.4, 0.85), 0.0 if complete else r.uniform(0.1, 0.65)
            ramps, pd_scan = (3, 2), r.randint(4, 14) if r.random() < 0.6 else None
            pvtt_floor, clears = r.uniform(0.2, 0.75), complete or r.random() < 0.25
        elif pattern == "stable":
            ld_floor, viable_floor = r.uniform(0.85, 1.05), r.uniform(0.75, 1.05)
            ramps, pd_scan = (1, 1), r.randint(2, 8) if r.random() < 0.7 else None
            pvtt_floor, clears = r.uniform(0.85, 1.05), False
        else:
            ld_floor, viable_floor = r.uniform(0.95, 1.1), r.uniform(0.95, 1.1)
            ramps, pd_scan = (1, 1), r.choice((1, 1, 2))
            pvtt_floor, clears = r.uniform(0.95, 1.1), False
        kinds = [r.choices(("growth", "new_ih", "new_eh", "nontarget"), (40, 30, 20, 10))[0]]
        if pvtt_vp is not None and r.random() < 0.5:
            kinds.append("pvtt")
        return cls(
            ld_floor,
            viable_floor,
            *ramps,
            pd_scan,
            tuple(kinds),
            pvtt_vp,
            pvtt_floor,
            clears,
            extrahepatic,
        )

    def factors(self, k: int) -> tuple[float, float]:
        """Fraction of the baseline longest and viable diameters at assessment k."""
        ld = 1 - (1 - self.ld_floor) * min(k, self.ld_ramp) / self.ld_ramp
        viable = 1 - (1 - self.viable_floor) * min(k, self.viable_ramp) / self.viable_ramp
        return ld, viable


@dataclass(frozen=True)
class Target:
    lesion_id: str
    location: str
    organ: str
    is_lymph_node: bool


def mm(tenths: int) -> float:
    return tenths / 10


def scan_reads(
    r: random.Random,
    plan: ScanPlan,
    baseline_on: date,
    scan_days: list[date],
) -> list[tuple[date, dict[str, Any]]]:
    """The baseline read and every follow-up read up to and including the progression scan."""
    targets, sizes = _baseline_targets(r, plan.extrahepatic)
    non_targets = [("NT1", "intrahepatic", "liver")] if r.random() < 0.6 else []
    if plan.extrahepatic and r.random() < 0.5:
        non_targets.append(("NT2", "extrahepatic", r.choice(("bone", "peritoneum"))))
    pvtt_base = r.randint(80, 220) if plan.pvtt_vp else 0
    branch = "main_portal" if plan.pvtt_vp == "Vp4" else r.choice(("right_portal", "left_portal"))
    reader, modality = f"rad{r.randint(1, 9):02d}", r.choice(("CT", "CT", "MRI"))
    history = [sizes]
    pvtt_history: list[tuple[int, str | None]] = [(pvtt_base, plan.pvtt_vp)]
    pvtt = _pvtt(plan.pvtt_vp, pvtt_base, branch) if plan.pvtt_vp else None
    reads = [
        (
            baseline_on,
            _read(
                modality, reader, "baseline", targets, sizes, non_targets, "present", [], pvtt, {}
            ),
        )
    ]
    for k, on in enumerate(scan_days, start=1):
        progression = k == plan.pd_scan
        if plan.pd_scan is not None and k > plan.pd_scan:
            break
        if not progression and r.random() < 0.04:
            continue  # a missed assessment
        fl, fv = plan.factors(k)
        sizes = []
        for target, (ld0, viable0) in zip(targets, history[0], strict=True):
            noise = r.uniform(0.985, 1.015)
            ld = round(ld0 * fl * noise)
            viable = (
                min(ld, round(viable0 * fv * noise)) if target.location == "intrahepatic" else ld
            )
            sizes.append((ld, viable))
        kinds = plan.pd_kinds if progression else ()
        if "nontarget" in kinds and not non_targets:
            kinds = ("growth", *kinds)
        if "growth" in kinds:
            sizes = _grown(r, history)
        status = (
            "unequivocal_progression"
            if "nontarget" in kinds
            else ("absent" if fv == 0 else "present")
        )
        new = _new_lesions(r, kinds)
        pvtt_now = _pvtt_size(r, plan, k, pvtt_base, pvtt_history, "pvtt" in kinds)
        pvtt = _pvtt(pvtt_now[1], pvtt_now[0], branch) if plan.pvtt_vp else None
        calls: dict[str, str] = {}  # the response engine's, once every read is known
        if r.random() < 0.04:
            calls[r.choice(("recist", "mrecist"))] = MISCALLED
        reads.append(
            (
                on,
                _read(
                    modality,
                    reader,
                    "follow_up",
                    targets,
                    sizes,
                    non_targets,
                    status,
                    new,
                    pvtt,
                    calls,
                ),
            )
        )
        history.append(sizes)
        pvtt_history.append(pvtt_now)
    return with_reader_calls(reads)


MISCALLED = "miscalled"  # placeholder: this criterion's call is to be got wrong on purpose


def with_reader_calls(
    reads: list[tuple[date, dict[str, Any]]],
) -> list[tuple[date, dict[str, Any]]]:
    """Each follow-up read with the calls a careful reader makes, per criterion: the
    response engine's own answers (`projections.criteria.reader_calls`), but for a criterion
    marked MISCALLED, which gets a wrong call for the engine to flag."""
    measured = [
        (on, ScanReadData.model_validate({k: v for k, v in data.items() if k != "reader_calls"}))
        for on, data in reads
    ]
    calls = engine_calls(measured)
    for (_, data), engine in zip(reads[1:], calls, strict=True):
        wrong = [criterion for criterion, call in data["reader_calls"].items() if call == MISCALLED]
        data["reader_calls"] = {
            criterion: WRONG_CALL.get(call, call) if criterion in wrong else call
            for criterion, call in engine.items()
        }
    return reads


def _baseline_targets(
    r: random.Random, extrahepatic: bool
) -> tuple[list[Target], list[tuple[int, int]]]:
    """1-4 measurable targets, ≤ 2 per organ (RECIST 1.1 §3.3): liver first, then spread."""
    targets: list[Target] = []
    sizes: list[tuple[int, int]] = []
    for _ in range(r.choice((1, 1, 2) if extrahepatic else (1, 2, 2))):
        ld = r.randint(150, 1100)
        targets.append(Target(f"T{len(targets) + 1}", "intrahepatic", "liver", False))
        sizes.append((ld, round(ld * r.uniform(0.7, 1.0))))
    if extrahepatic:
        organ = r.choice(("lung", "lung", "lymph_node", "adrenal"))
        for _ in range(1 if organ == "adrenal" else r.choice((1, 1, 2))):
            node = organ == "lymph_node"
            size = r.randint(150, 300) if node else r.randint(100, 350)
            targets.append(Target(f"T{len(targets) + 1}", "extrahepatic", organ, node))
            sizes.append((size, size))
    return targets, sizes


def _grown(r: random.Random, history: list[list[tuple[int, int]]]) -> list[tuple[int, int]]:
    """Every target ≥ 30 % above its size at the nadir (both criteria) plus 3 mm."""
    ld_nadir = min(history, key=lambda scan: sum(ld for ld, _ in scan))
    viable_nadir = min(history, key=lambda scan: sum(v for _, v in scan))
    grown = []
    for (ld, _), (_, viable) in zip(ld_nadir, viable_nadir, strict=True):
        g = r.uniform(1.3, 1.6)
        grown.append((round(max(ld, viable) * g) + 30, round(viable * g) + 30))
    return grown


def _new_lesions(r: random.Random, kinds: tuple[str, ...]) -> list[dict[str, Any]]:
    new = []
    if "new_ih" in kinds:
        size = r.randint(100, 280)
        new.append(
            {
                "lesion_id": "NL1",
                "location": "intrahepatic",
                "organ": "liver",
                "role": "new",
                "longest_diameter_mm": mm(size),
                "viable_diameter_mm": mm(size),
                "typical_hcc_pattern": True,
                "enhancing": True,
            }
        )
    if "new_eh" in kinds:
        size = r.randint(80, 250)
        new.append(
            {
                "lesion_id": "NL2",
                "location": "extrahepatic",
                "organ": r.choice(NEW_EXTRAHEPATIC_ORGANS),
                "role": "new",
                "longest_diameter_mm": mm(size),
            }
        )
    return new


def _pvtt_size(
    r: random.Random,
    plan: ScanPlan,
    k: int,
    base: int,
    history: list[tuple[int, str | None]],
    progression: bool,
) -> tuple[int, str | None]:
    """Thrombus diameter (0 = recanalised) and Vp grade at assessment k."""
    if plan.pvtt_vp is None:
        return 0, None
    if progression:
        nadir, grade = min(history, key=lambda point: point[0])
        if nadir == 0:
            return round(base * 0.6), plan.pvtt_vp
        worse = VP_ORDER[min(3, VP_ORDER.index(plan.pvtt_vp) + 1)] if r.random() < 0.5 else grade
        return round(nadir * r.uniform(1.3, 1.6)) + 10, worse
    if plan.pvtt_clears and k >= 2:
        return 0, None
    fraction = 1 - (1 - plan.pvtt_floor) * min(k, 2) / 2
    return round(base * fraction * r.uniform(0.985, 1.015)), plan.pvtt_vp


def _pvtt(vp: str | None, size: int, branch: str) -> dict[str, Any]:
    """The thrombus block of a patient with PVTT at baseline; no grade = recanalised."""
    if vp is None:
        return {"present": False, "enhancing": False}
    return {
        "present": True,
        "vp_grade": vp,
        "thrombus_diameter_mm": mm(size),
        "enhancing": True,
        "branch": branch,
    }


def _read(
    modality: str,
    reader: str,
    timepoint: str,
    targets: list[Target],
    sizes: list[tuple[int, int]],
    non_targets: list[tuple[str, str, str]],
    status: str,
    new: list[dict[str, Any]],
    pvtt: dict[str, Any] | None,
    calls: dict[str, str],
) -> dict[str, Any]:
    lesions: list[dict[str, Any]] = []
    for target, (ld, viable) in zip(targets, sizes, strict=True):
        lesion: dict[str, Any] = {
            "lesion_id": target.lesion_id,
            "location": target.location,
            "organ": target.organ,
            "is_lymph_node": target.is_lymph_node,
            "role": "target",
            "viable_diameter_mm": mm(viable),
            "enhancing": viable > 0,
        }
        lesion["short_axis_mm" if target.is_lymph_node else "longest_diameter_mm"] = mm(ld)
        lesions.append(lesion)
    for lesion_id, location, organ in non_targets:
        lesions.append(
            {
                "lesion_id": lesion_id,
                "location": location,
                "organ": organ,
                "role": "non_target",
                "status": status,
                "enhancing": status != "absent",
            }
        )
    data: dict[str, Any] = {
        "modality": modality,
        "timepoint": timepoint,
        "lesions": lesions + new,
        "reader": reader,
        "reader_calls": calls,
    }
    if pvtt is not None:
        data["pvtt"] = pvtt
    return data

"""The intake's warnings about a patient's baseline (DOMAIN.md "Time origin and units",
RECIST 1.1 §3): an event that breaks no rule is accepted, but when it leaves the baseline
flagged the writer's reply says so at once (`warnings`, beside `errors`), so the site can
correct the scan rather than learn months later that the patient fell out of the ORR
denominator. The flags and their sentences are `projections.criteria.baseline`'s.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

from events import (
    DoseModified,
    InfusionGiven,
    LedgerEvent,
    ProtocolParameters,
    ScanRead,
    ScanReadData,
)
from projections.common.field_error import FieldError
from projections.criteria.baseline import NO_MEASURABLE_DISEASE, describe, unusable_baseline_flag
from projections.criteria.mrecist import MRecist
from projections.criteria.recist import Recist, select_baseline
from projections.intake.rules import PatientFacts


def baseline_warnings(
    facts: PatientFacts, event: LedgerEvent, params: ProtocolParameters
) -> list[FieldError]:
    """What an accepted event makes of the patient's baseline, for the site to see at once
    (`projections.criteria.baseline`; the reply's `warnings`, never a reason to refuse).

    A baseline scan: each RECIST 1.1 §3 selection breach (non-measurable target, > 5
    targets, > 2 per organ, no measurable disease) per criterion, and a date after the first
    dose already recorded. A first dose dated before the recorded baseline scan: that scan
    can no longer serve as baseline.
    """
    match event:
        case ScanRead(data=data) if data.timepoint == "baseline":
            startdt = _first_dose_on(facts.events.values())
            warnings = _selection_warnings(data)
            flag = unusable_baseline_flag(event.occurred_on, facts.enrolled_on, startdt, params)
            if flag is not None:
                warnings.append(FieldError("occurred_on", describe(flag)))
            return warnings
        case InfusionGiven() | DoseModified():
            dosed = _first_dose_on([event])
            latest = facts.latest_clinical_on
            # Doses entered as they are given postdate every scan: nothing to look up then.
            if dosed is None or latest is None or dosed >= latest:
                return []
            startdt = _first_dose_on(facts.events.values())
            if startdt is not None and startdt <= dosed:
                return []
            return [
                FieldError("occurred_on", describe(flag))
                for scan in facts.events.values()
                if isinstance(scan, ScanRead) and scan.data.timepoint == "baseline"
                if (
                    flag := unusable_baseline_flag(
                        scan.occurred_on, facts.enrolled_on, dosed, params
                    )
                )
            ]
        case _:
            return []


def _first_dose_on(events: Iterable[LedgerEvent]) -> dt.date | None:
    # STARTDT as DOMAIN.md defines it: first HAIC / PD-1 infusion or lenvatinib start.
    starts = [
        e.occurred_on
        for e in events
        if isinstance(e, InfusionGiven)
        or (
            isinstance(e, DoseModified)
            and e.data.agent == "lenvatinib"
            and e.data.action == "start"
        )
    ]
    return min(starts, default=None)


def _selection_warnings(data: ScanReadData) -> list[FieldError]:
    by_flag: dict[str, list[str]] = {}
    for rules in (Recist(), MRecist()):
        selected = select_baseline(rules, data)
        flags = [*selected.flags, *(() if selected.measurable else (NO_MEASURABLE_DISEASE,))]
        for flag in flags:
            by_flag.setdefault(flag, []).append(rules.name)
    return [
        FieldError("data.lesions", f"{' and '.join(names)}: {describe(flag)}")
        for flag, names in by_flag.items()
    ]

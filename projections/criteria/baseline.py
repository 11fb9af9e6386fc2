"""Which scan is a patient's baseline, and the baseline flags everyone must see.

DOMAIN.md "Time origin and units": baseline scans may be dated up to `screening_window_days`
(default 28) before enrollment; the baseline is the last assessment on or before STARTDT. One
rule, read by the intake (`projections.intake.rules`: a baseline scan before the window is
refused, one the engine cannot use is accepted with a warning) and by the response and
time-to-event engines (`projections.criteria.response`, `projections.endpoints.tte`), so a scan the intake
accepted as baseline is never dropped silently: the window opens `screening_window_days`
before the earlier of enrollment and STARTDT and closes on STARTDT.

The flags of a baseline (RECIST 1.1 §3: selection of target lesions) are strings, `kind` or
`kind:detail`; `describe` turns one into the sentence the API, the patient page and the
intake warnings show.
"""

from __future__ import annotations

import datetime as dt

from events import ProtocolParameters
from projections.common.calendar import add_days

NO_BASELINE = "no_baseline"
OUTSIDE_WINDOW = "baseline_outside_screening_window"
AFTER_STARTDT = "baseline_after_startdt"
NO_MEASURABLE_DISEASE = "no_measurable_disease"

_SENTENCES = {
    NO_BASELINE: "no usable baseline scan: every follow-up is NE, the patient is outside the "
    "ORR denominator and PFS is censored at STARTDT",
    OUTSIDE_WINDOW: "the baseline scan of {} lies before the screening window and cannot be used",
    AFTER_STARTDT: "the baseline scan of {} is after the first dose (STARTDT) and cannot be used",
    NO_MEASURABLE_DISEASE: "no measurable target lesion at baseline: outside the ORR denominator",
    "target_not_measurable": "target {} is not measurable at baseline (< 10 mm, node < 15 mm)",
    "more_than_5_targets": "more than 5 target lesions at baseline (RECIST 1.1 allows 5)",
    "more_than_2_targets_in": "more than 2 target lesions in {} (RECIST 1.1 allows 2 per organ)",
    "baseline_target_not_measured": "target {} has no baseline measurement and is left out",
    "new_lesion_at_baseline": "lesion {} is marked new on the baseline scan",
    "not_malignant_by_size": "lesion {} is not malignant by size (porta hepatis node < 20 mm)",
    "no_baseline_pvtt": "no portal vein tumour thrombus at baseline",
}


def screening_window_opens(
    enrolled_on: dt.date | None, startdt: dt.date | None, params: ProtocolParameters
) -> dt.date | None:
    """The earliest date a baseline assessment may have: `screening_window_days` before the
    earlier of enrollment and STARTDT (None when neither is known)."""
    anchors = [day for day in (enrolled_on, startdt) if day is not None]
    if not anchors:
        return None
    return add_days(min(anchors), -params.screening_window_days)


def usable_as_baseline(
    on: dt.date,
    enrolled_on: dt.date | None,
    startdt: dt.date | None,
    params: ProtocolParameters,
) -> bool:
    """Whether an assessment dated `on` can be the baseline of a treated patient: inside the
    screening window and on or before STARTDT."""
    opens = screening_window_opens(enrolled_on, startdt, params)
    return startdt is not None and opens is not None and opens <= on <= startdt


def unusable_baseline_flag(
    on: dt.date, enrolled_on: dt.date | None, startdt: dt.date | None, params: ProtocolParameters
) -> str | None:
    """Why a scan the site marked as baseline cannot be used (None: it can, or there is no
    STARTDT yet to judge by)."""
    if startdt is None:
        return None
    if on > startdt:
        return f"{AFTER_STARTDT}:{on.isoformat()}"
    opens = screening_window_opens(enrolled_on, startdt, params)
    if opens is not None and on < opens:
        return f"{OUTSIDE_WINDOW}:{on.isoformat()}"
    return None


def describe(flag: str) -> str:
    """A baseline flag as a sentence (unknown flags are shown as they are)."""
    kind, _, detail = flag.partition(":")
    sentence = _SENTENCES.get(kind)
    if sentence is None:
        return flag
    return sentence.format(detail) if "{}" in sentence else sentence

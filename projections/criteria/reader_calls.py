"""The overall response a careful reader calls at each follow-up scan, per criterion.

The response engine's own answers (RECIST 1.1 `projections.criteria.recist`, mRECIST
`projections.criteria.mrecist`, PVTT `projections.criteria.pvtt`; DOMAIN.md "Tumour response per timepoint"),
for whoever writes reads as a reader would — the trial simulator — so that a simulated
reader and the engine can only disagree where a read is wrong on purpose, never because two
copies of the rules drifted apart.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from events import ProtocolParameters
from events.scans import ScanReadData
from projections.criteria.mrecist import MRecist
from projections.criteria.pvtt import assess_pvtt, has_pvtt
from projections.criteria.recist import Recist, assess_lesions, select_baseline

DEFAULT_PARAMETERS = ProtocolParameters()


def engine_calls(
    reads: Sequence[tuple[dt.date, ScanReadData]],
    params: ProtocolParameters = DEFAULT_PARAMETERS,
) -> list[dict[str, str]]:
    """For a baseline read followed by follow-up reads in date order: each follow-up's
    overall response per criterion (`recist`, `mrecist`, and `pvtt` when the baseline shows
    a portal vein tumour thrombus), as the engine assesses them against that baseline."""
    baseline, follow_ups = reads[0][1], list(reads[1:])
    calls: list[dict[str, str]] = [{} for _ in follow_ups]
    rules: Recist
    for key, rules in (
        ("recist", Recist.from_parameters(params)),
        ("mrecist", MRecist.from_parameters(params)),
    ):
        assessed = assess_lesions(rules, select_baseline(rules, baseline), follow_ups, params)
        for call, assessment in zip(calls, assessed, strict=True):
            call[key] = assessment.overall
    if has_pvtt(baseline) and baseline.pvtt is not None:
        for call, assessment in zip(
            calls, assess_pvtt(baseline.pvtt, follow_ups, params), strict=True
        ):
            call["pvtt"] = assessment.overall
    return calls

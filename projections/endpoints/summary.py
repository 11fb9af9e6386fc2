"""Trial-level summaries of the clinical endpoints: Kaplan–Meier per PARAMCD, ORR and DCR.

DOMAIN.md "Kaplan–Meier summaries" (median with its Brookmeyer–Crowley CI, landmarks at 6, 12
and 24 months, numbers at risk; R `survival` conventions, see `projections.statistics.km`) and "Best
overall response and ORR" (ORR = (CR + PR) / N, DCR = (CR + PR + SD + NON-CR/NON-PD) / N,
N = treated patients with measurable disease at baseline under the criterion, exact
Clopper–Pearson CI, see `projections.statistics.binomial`). Every summary carries the ledger seq and
the parameter version it was computed from (DESIGN.md rule 6).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, get_args

from projections.criteria.recist import CR, NON_CR_NON_PD, PR, SD
from projections.endpoints.tte import DAYS_PER_MONTH
from projections.statistics.binomial import clopper_pearson
from projections.statistics.km import ConfType, KMResult, kaplan_meier, median, n_at_risk
from projections.statistics.km import survival_at as km_survival_at

LANDMARK_MONTHS = (6, 12, 24)
AT_RISK_MONTHS = (0, 3, 6, 9, 12, 15, 18, 21, 24)
RESPONDERS = frozenset({CR, PR})
DISEASE_CONTROL = frozenset({CR, PR, SD, NON_CR_NON_PD})


def months_to_days(months: float) -> float:
    """Months as days: × 30.4375 (DOMAIN.md "Time origin and units")."""
    return months * DAYS_PER_MONTH


@dataclass(frozen=True, slots=True)
class Landmark:
    """S(t) at a landmark with its pointwise CI; None beyond the last observed time."""

    months: int
    days: float
    survival: float | None
    lower: float | None
    upper: float | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "months": self.months,
            "days": self.days,
            "survival": self.survival,
            "ci": [self.lower, self.upper],
        }


@dataclass(frozen=True, slots=True)
class EndpointSummary:
    """One time-to-event endpoint over the trial: counts, median [CI] in days, landmarks.

    `median_ci_days` uses `conf_type`; `median_ci_by_conf_type` gives the CI under each of the
    three transforms. A limit of None is "not reached" (NE).
    """

    paramcd: str
    n: int
    events: int
    conf_type: ConfType
    median_days: float | None
    median_ci_days: tuple[float | None, float | None]
    median_ci_by_conf_type: dict[str, tuple[float | None, float | None]]
    landmarks: tuple[Landmark, ...]
    at_risk: tuple[tuple[int, int], ...]
    at_seq: int
    parameters_version: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "paramcd": self.paramcd,
            "n": self.n,
            "events": self.events,
            "median_days": self.median_days,
            "median_ci_days": list(self.median_ci_days),
            "median_months": _months(self.median_days),
            "median_ci_months": [_months(limit) for limit in self.median_ci_days],
            "median_ci_by_conf_type": {k: list(v) for k, v in self.median_ci_by_conf_type.items()},
            "conf_type": self.conf_type,
            "landmarks": [landmark.to_dict() for landmark in self.landmarks],
            "at_risk": [{"months": m, "n": count} for m, count in self.at_risk],
            "at_seq": self.at_seq,
            "parameters_version": self.parameters_version,
        }


def fit(times: Sequence[float], events: Sequence[bool], conf_type: ConfType) -> KMResult | None:
    """The Kaplan–Meier fit, or None for an endpoint nobody is in yet."""
    return kaplan_meier(times, events, conf_type) if times else None


def summarize_endpoint(
    paramcd: str,
    times: Sequence[float],
    events: Sequence[bool],
    conf_type: ConfType,
    *,
    at_seq: int,
    parameters_version: int,
) -> EndpointSummary:
    """KM summary of one PARAMCD from its ADTTE AVALs (days) and event flags (CNSR = 0).

    Median and its CI follow R `quantile.survfit` (midpoint rule on a flat S = 0.5), the
    landmark rows `summary.survfit(times=)`, numbers at risk count AVAL ≥ t.
    """
    by_type = {kind: fit(times, events, kind) for kind in get_args(ConfType)}
    chosen = by_type[conf_type]
    cis: dict[str, tuple[float | None, float | None]] = {}
    for kind, result in by_type.items():
        if result is None:
            cis[kind] = (None, None)
        else:
            _, lower, upper = median(result)
            cis[kind] = (lower, upper)
    landmarks = tuple(_landmark(chosen, months) for months in LANDMARK_MONTHS)
    at_risk = tuple(
        (months, 0 if chosen is None else n_at_risk(chosen, months_to_days(months)))
        for months in AT_RISK_MONTHS
    )
    return EndpointSummary(
        paramcd=paramcd,
        n=len(times),
        events=sum(1 for event in events if event),
        conf_type=conf_type,
        median_days=None if chosen is None else median(chosen).estimate,
        median_ci_days=cis[conf_type],
        median_ci_by_conf_type=cis,
        landmarks=landmarks,
        at_risk=at_risk,
        at_seq=at_seq,
        parameters_version=parameters_version,
    )


def _landmark(result: KMResult | None, months: int) -> Landmark:
    days = months_to_days(months)
    if result is None:
        return Landmark(months, days, None, None, None)
    estimate, lower, upper = km_survival_at(result, days)
    return Landmark(months, days, estimate, lower, upper)


def _months(days: float | None) -> float | None:
    return None if days is None else days / DAYS_PER_MONTH


@dataclass(frozen=True, slots=True)
class ResponseOutcome:
    """One patient's best responses under one criterion and whether the patient is in N."""

    treated: bool
    measurable: bool
    bor: str
    cbor: str


@dataclass(frozen=True, slots=True)
class RateSummary:
    """A response rate with its exact CI and the denominator it is over."""

    measure: str
    criterion: str
    confirmed: bool
    responders: int
    n: int
    rate: float | None
    ci: tuple[float | None, float | None]
    denominator: str
    at_seq: int
    parameters_version: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "measure": self.measure,
            "criterion": self.criterion,
            "confirmed": self.confirmed,
            "responders": self.responders,
            "n": self.n,
            "rate": self.rate,
            "ci": list(self.ci),
            "denominator": self.denominator,
            "at_seq": self.at_seq,
            "parameters_version": self.parameters_version,
        }


def response_rates(
    criterion: str,
    outcomes: Sequence[ResponseOutcome],
    *,
    at_seq: int,
    parameters_version: int,
) -> tuple[RateSummary, ...]:
    """ORR and DCR of one criterion, confirmed (primary) then unconfirmed (DOMAIN.md "Best
    overall response and ORR"): N = treated patients measurable at baseline; NE and MISSING
    count in N as non-responders."""
    population = [o for o in outcomes if o.treated and o.measurable]
    denominator = f"treated patients with measurable disease at baseline per {criterion}"
    rates: list[RateSummary] = []
    for measure, counted in (("ORR", RESPONDERS), ("DCR", DISEASE_CONTROL)):
        for confirmed in (True, False):
            k = sum(1 for o in population if (o.cbor if confirmed else o.bor) in counted)
            estimate = clopper_pearson(k, len(population))
            rates.append(
                RateSummary(
                    measure=measure,
                    criterion=criterion,
                    confirmed=confirmed,
                    responders=k,
                    n=len(population),
                    rate=estimate.rate,
                    ci=(estimate.lower, estimate.upper),
                    denominator=denominator,
                    at_seq=at_seq,
                    parameters_version=parameters_version,
                )
            )
    return tuple(rates)

"""Kaplan–Meier survival estimates that reproduce R ``survival`` (3.x) number for number.

Rules, each with the R source it reproduces:

* Estimate: product-limit S(t) = Π_{tᵢ ≤ t} (1 − dᵢ/nᵢ), from ``scipy.stats.ecdf`` on
  ``scipy.stats.CensoredData`` (the DOMAIN.md engine). One step-table row per distinct time,
  event or censoring, as ``survfit()`` keeps them. Subjects censored at t are at risk at t.
* ``std_err`` is ``survfit()$std.err``: the Greenwood standard error of −log S(t),
  √Σ dᵢ/(nᵢ(nᵢ − dᵢ)) (``survfitkm.c``). It is infinite, reported as None, once S(t) = 0.
  ``summary.survfit`` prints S(t)·std_err instead (the standard error of S itself).
* Pointwise CI (``survfit_confint``), z = Φ⁻¹(1 − (1 − conf_level)/2):
  "log" (R's default) exp(log S ± z·se), upper capped at 1, None where S = 0;
  "log-log" (this project's default) exp(−exp(log(−log S) ∓ z·se/log S)), None where S is
  0 or 1; "plain" S ± z·se·S clipped to [0, 1], None where S = 0. scipy's own
  ``confidence_interval`` is not used because these edge rules differ from R's.
* Quantiles (``quantile.survfit`` / ``findq``, tolerance √ε): the p-quantile is the first time
  S(t) ≤ 1 − p. If S equals 1 − p (within tolerance) on a flat stretch, it is the midpoint of
  that stretch; if the curve *ends* at 1 − p, the midpoint of where it got there and the last
  time in the table. The CI limits apply the same rule to the pointwise bands: the lower limit
  comes from the lower band, the upper limit from the upper band (Brookmeyer–Crowley style).
  A band that never gets to 1 − p gives None. ``findq`` sorts a band's points by level before
  looking the level up, so where a band rises again (small risk sets) R answers with the time
  at which the band is highest while still ≤ 1 − p, not necessarily the first time it got
  there. This module does the same, to match R.
* Landmarks (``summary.survfit(times=)``, default ``extend=FALSE``): the row at the last time
  ≤ t. Before the first time: S = 1 with CI [1, 1]. After the last time: all None.
* Number at risk at t (``summary.survfit`` n.risk): how many subjects have time ≥ t.

Outputs hold only ints, floats and None (never NaN or ∞), so they serialise to JSON as they are.
"""

from __future__ import annotations

import math
import sys
from bisect import bisect_right
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal, get_args

import numpy as np
from numpy.typing import NDArray
from scipy import special, stats

ConfType = Literal["log-log", "log", "plain"]
CONF_TYPES: tuple[str, ...] = get_args(ConfType)

# R: quantile.survfit(tolerance = sqrt(.Machine$double.eps)). Products such as
# (19/20)(18/19)…(10/11) miss 0.5 by an ulp, yet must count as "exactly 0.5".
QUANTILE_TOLERANCE = math.sqrt(sys.float_info.epsilon)
_LOG_MAX_FLOAT = math.log(sys.float_info.max)


@dataclass(frozen=True, slots=True)
class KMRow:
    """One step of the curve, at a time with at least one event or censoring."""

    time: float
    n_risk: int
    n_event: int
    n_censor: int
    surv: float
    std_err: float | None
    lower: float | None
    upper: float | None


@dataclass(frozen=True, slots=True)
class KMResult:
    """The fitted curve: counts, the step table and how its CI was made."""

    n: int
    n_events: int
    conf_type: ConfType
    conf_level: float
    rows: tuple[KMRow, ...]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class Estimate:
    """A point estimate with its CI limits; unpacks as ``est, lo, hi = ...``."""

    estimate: float | None
    lower: float | None
    upper: float | None

    def __iter__(self) -> Iterator[float | None]:
        return iter((self.estimate, self.lower, self.upper))


def kaplan_meier(
    times: Sequence[float],
    events: Sequence[bool | int],
    conf_type: ConfType = "log-log",
    conf_level: float = 0.95,
) -> KMResult:
    """Fit the Kaplan–Meier curve of right-censored data, as ``survfit(Surv(times, events) ~ 1)``.

    ``times`` are finite and ≥ 0; ``events`` are 1/True (event) or 0/False (censored).
    """
    t, died = _validate(times, events, conf_type, conf_level)
    fit = stats.ecdf(stats.CensoredData(uncensored=t[died], right=t[~died]))
    unique_times, row_of = np.unique(t, return_inverse=True)
    if not np.array_equal(fit.sf.quantiles, unique_times):
        # Our counts are indexed by np.unique's rows; they must be the engine's rows too.
        raise RuntimeError("scipy.stats.ecdf returned an unexpected set of times")

    n_total = np.bincount(row_of, minlength=unique_times.size)
    n_event = np.bincount(row_of, weights=died, minlength=unique_times.size).astype(np.int64)
    n_risk = t.size - np.concatenate(([0], np.cumsum(n_total)[:-1]))
    with np.errstate(divide="ignore"):
        # n = d makes the term infinite, as in R: S is 0 from then on and its se undefined.
        greenwood = np.cumsum(n_event / (n_risk * (n_risk - n_event)).astype(np.float64))
    std_err = np.sqrt(greenwood)
    z = float(special.ndtri(1.0 - (1.0 - conf_level) / 2.0))

    rows = []
    for i in range(unique_times.size):
        surv, se = float(fit.sf.probabilities[i]), float(std_err[i])
        lower, upper = _pointwise_ci(surv, se, z, conf_type)
        rows.append(
            KMRow(
                time=float(unique_times[i]),
                n_risk=int(n_risk[i]),
                n_event=int(n_event[i]),
                n_censor=int(n_total[i] - n_event[i]),
                surv=surv,
                std_err=_finite(se),
                lower=lower,
                upper=upper,
            )
        )
    return KMResult(
        n=int(t.size),
        n_events=int(died.sum()),
        conf_type=conf_type,
        conf_level=float(conf_level),
        rows=tuple(rows),
    )


def quantile(result: KMResult, p: float) -> Estimate:
    """Time by which a fraction ``p`` (0 < p < 1) has had the event, with its CI.

    ``p`` follows R's convention (a CDF probability): ``quantile(result, 0.25)`` is the first
    time S(t) ≤ 0.75. None means "not reached". Rule: see the module docstring.
    """
    if not 0.0 < p < 1.0:
        raise ValueError(f"p must be strictly between 0 and 1, got {p!r}")
    times = [row.time for row in result.rows]
    return Estimate(
        estimate=_find_quantile(times, [row.surv for row in result.rows], p),
        lower=_find_quantile(times, [row.lower for row in result.rows], p),
        upper=_find_quantile(times, [row.upper for row in result.rows], p),
    )


def median(result: KMResult) -> Estimate:
    """Median survival time with its CI: ``quantile(result, 0.5)``."""
    return quantile(result, 0.5)


def survival_at(result: KMResult, t: float, *, extend: bool = False) -> Estimate:
    """S(t) with its CI, as ``summary(fit, times=t, extend=extend)`` reports it.

    Beyond the last time in the table the curve is unknown (R drops the row), so all three are
    None unless ``extend`` is set, which carries the last row forward as R does.
    """
    rows = result.rows
    if t > rows[-1].time and not extend:
        return Estimate(None, None, None)
    k = bisect_right([row.time for row in rows], t)
    if k == 0 and rows[0].time > 0.0:
        # summary.survfit looks t up in survfit0(fit), which starts with S(0) = 1, CI [1, 1].
        return Estimate(1.0, 1.0, 1.0)
    row = rows[max(k, 1) - 1]
    return Estimate(row.surv, row.lower, row.upper)


def n_at_risk(result: KMResult, t: float) -> int:
    """How many subjects are still at risk at ``t``: those whose time is ≥ t."""
    return sum(row.n_event + row.n_censor for row in result.rows if row.time >= t)


def _validate(
    times: Sequence[float],
    events: Sequence[bool | int],
    conf_type: str,
    conf_level: float,
) -> tuple[NDArray[np.float64], NDArray[np.bool_]]:
    if len(times) != len(events):
        raise ValueError(f"{len(times)} times but {len(events)} event flags")
    if len(times) == 0:
        raise ValueError("no observations")
    if conf_type not in CONF_TYPES:
        raise ValueError(f"conf_type must be one of {CONF_TYPES}, got {conf_type!r}")
    if not 0.0 < conf_level < 1.0:
        raise ValueError(f"conf_level must be strictly between 0 and 1, got {conf_level!r}")
    # Reject R's 1/2 status coding and the like instead of guessing what 2 means.
    if any(e not in (0, 1) for e in events):
        raise ValueError("events must be 0/1 or False/True")
    t = np.asarray(times, dtype=np.float64)
    if not np.all(np.isfinite(t)) or np.any(t < 0.0):
        raise ValueError("times must be finite and non-negative")
    return t, np.asarray(events, dtype=np.bool_)


def _finite(x: float) -> float | None:
    return x if math.isfinite(x) else None


def _pointwise_ci(
    surv: float, se: float, z: float, conf_type: ConfType
) -> tuple[float | None, float | None]:
    # Mirrors survival:::survfit_confint with logse=TRUE; its NA cases come back as None.
    if not math.isfinite(se):
        return None, None
    if conf_type == "plain":
        half_width = se * surv * z
        return max(surv - half_width, 0.0), min(surv + half_width, 1.0)
    if conf_type == "log":
        if surv == 0.0:
            return None, None
        log_s = math.log(surv)
        return _exp(log_s - z * se), min(_exp(log_s + z * se), 1.0)
    if surv in (0.0, 1.0):
        return None, None
    log_s = math.log(surv)
    shift = z * se / log_s  # negative, so "− shift" widens towards 0
    log_log = math.log(-log_s)
    return _exp(-_exp(log_log - shift)), _exp(-_exp(log_log + shift))


def _exp(x: float) -> float:
    # math.exp raises on overflow where R's exp() gives Inf; Inf is what the formulas expect.
    return math.inf if x > _LOG_MAX_FLOAT else math.exp(x)


def _find_quantile(times: Sequence[float], curve: Sequence[float | None], p: float) -> float | None:
    # A transcription of the rule of survival:::findq, on the CDF scale F = 1 − curve, with the
    # point (0, F = 0) in front as quantile.survfit adds it.
    xs = [0.0, *times]
    ys = [0.0, *(None if s is None else 1.0 - s for s in curve)]
    last_time = xs[-1]
    if max(y for y in ys if y is not None) < p:
        return None
    # R drops repeated levels (censor-only rows, and every NA after the first) before looking up.
    seen: set[float | None] = set()
    kept: list[tuple[float, float | None]] = []
    for x, y in zip(xs, ys, strict=True):
        if y not in seen:
            seen.add(y)
            kept.append((x, y))
    at_or_above = _first_level_at_least(kept, p, +QUANTILE_TOLERANCE)
    past = _first_level_at_least(kept, p, -QUANTILE_TOLERANCE)
    final_level = kept[-1][1]
    if final_level is not None and abs(p - final_level) < QUANTILE_TOLERANCE:
        # The curve ends on the requested level: the flat runs to the last time observed.
        return None if at_or_above is None else (at_or_above + last_time) / 2.0
    if at_or_above is None or past is None:
        return None
    return (at_or_above + past) / 2.0


def _first_level_at_least(
    points: Sequence[tuple[float, float | None]], p: float, shift: float
) -> float | None:
    # R: approx(y + shift, index, p, method="constant", f=1, rule=1). approx sorts by level,
    # drops NA, answers NA outside the levels' range, else the point of the least level ≥ p.
    levels = sorted((y + shift, x) for x, y in points if y is not None)
    if p < levels[0][0] or p > levels[-1][0]:
        return None
    return next(x for level, x in levels if level >= p)

"""Kaplan–Meier estimates, checked against R (survival, MASS) output and hand-derived R rules.

Reference numbers live in data/km_reference.json: the R prints with their source, the datasets,
and full-precision values computed independently of projections/statistics/km.py (see its "_about").
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from scipy import stats

from projections.statistics.km import (
    Estimate,
    KMResult,
    kaplan_meier,
    median,
    n_at_risk,
    quantile,
    survival_at,
)

pytestmark = pytest.mark.unit

REF: dict[str, Any] = json.loads(
    (Path(__file__).parent / "data" / "km_reference.json").read_text(encoding="utf-8")
)
TOL = 1e-6
CONF_TYPES = ("log", "log-log", "plain")


def fit(name: str, conf_type: str = "log", conf_level: float = 0.95) -> KMResult:
    data = REF["datasets"][name]
    return kaplan_meier(data["time"], data["status"], conf_type, conf_level)  # type: ignore[arg-type]


def close(actual: float | None, expected: float | None, tol: float = TOL) -> bool:
    if expected is None or actual is None:
        return actual is expected
    return abs(actual - expected) <= tol


def matches_print(actual: float | None, printed: str) -> bool:
    """R prints NA/NaN for undefined values, else a number good to half a unit in its last place."""
    if printed in ("NA", "NaN"):
        return actual is None
    decimals = len(printed.partition(".")[2])
    return actual is not None and abs(actual - float(printed)) <= 0.5 * 10.0**-decimals + 1e-12


def printed_time(printed: str) -> float | None:
    return None if printed == "NA" else float(printed)


# --- the step table -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "conf_type"),
    [(name, ct) for name, tables in REF["full_precision"].items() for ct in tables],
)
def test_step_table_matches_independent_reference_to_1e_6(name: str, conf_type: str) -> None:
    result = fit(name, conf_type)
    expected = REF["full_precision"][name][conf_type]
    assert len(result.rows) == len(expected)
    for row, (time, n_risk, n_event, n_censor, surv, std_err, lower, upper) in zip(
        result.rows, expected, strict=True
    ):
        counts = (row.time, row.n_risk, row.n_event, row.n_censor)
        assert counts == (time, n_risk, n_event, n_censor)
        for actual, wanted in ((row.surv, surv), (row.std_err, std_err)):
            assert close(actual, wanted), (row, wanted)
        assert close(row.lower, lower), (row, lower)
        assert close(row.upper, upper), (row, upper)


@pytest.mark.parametrize("conf_type", CONF_TYPES)
def test_conf_level_sets_the_normal_quantile_of_every_band(conf_type: str) -> None:
    result = fit("aml_maintained", conf_type, conf_level=0.90)
    expected = REF["full_precision_conf_level_0.90"]["aml_maintained"][conf_type]
    for row, wanted in zip(result.rows, expected, strict=True):
        assert close(row.lower, wanted[6]), (row, wanted)
        assert close(row.upper, wanted[7]), (row, wanted)


@pytest.mark.parametrize(
    ("print_id", "name"),
    [
        ("aml_summary_log", "aml_maintained"),
        ("aml_summary_log", "aml_nonmaintained"),
        ("gehan_summary_loglog", "gehan_6mp"),
        ("gehan_summary_loglog", "gehan_control"),
    ],
)
def test_event_rows_match_r_summary_print(print_id: str, name: str) -> None:
    printed = REF["r_printed"][print_id]
    result = fit(name, printed["conf_type"])
    by_time = {row.time: row for row in result.rows}
    event_rows = [row for row in result.rows if row.n_event > 0]
    assert len(event_rows) == len(printed["tables"][name])
    for time, n_risk, n_event, surv, se_surv, lower, upper in printed["tables"][name]:
        row = by_time[float(time)]
        assert (row.n_risk, row.n_event) == (int(n_risk), int(n_event))
        # summary.survfit prints the standard error of S, i.e. S times survfit's std.err.
        std_err_of_s = None if row.std_err is None else row.surv * row.std_err
        assert matches_print(row.surv, surv)
        assert matches_print(std_err_of_s, se_surv), (time, std_err_of_s, se_surv)
        assert matches_print(row.lower, lower), (time, row.lower, lower)
        assert matches_print(row.upper, upper), (time, row.upper, upper)


def test_std_err_is_greenwood_se_of_log_survival_with_ties_counted_once_per_time() -> None:
    # At t = 2 five are at risk (the one censored at 2 included) and two die:
    # Greenwood sum = 1/(6·5) + 2/(5·3) = 1/6.
    result = kaplan_meier([1, 2, 2, 2, 3, 4], [1, 1, 1, 0, 0, 1])
    assert [(r.time, r.n_risk, r.n_event, r.n_censor) for r in result.rows] == [
        (1.0, 6, 1, 0),
        (2.0, 5, 2, 1),
        (3.0, 2, 0, 1),
        (4.0, 1, 1, 0),
    ]
    assert close(result.rows[1].surv, 0.5)
    assert close(result.rows[1].std_err, math.sqrt(1 / 6))
    assert result.rows[2].std_err == result.rows[1].std_err


# --- CI edge cases (survfit_confint) ------------------------------------------------------


@pytest.mark.parametrize("conf_type", CONF_TYPES)
def test_curve_at_zero_has_undefined_std_err_and_ci(conf_type: str) -> None:
    last = fit("aml_nonmaintained", conf_type).rows[-1]
    assert (last.time, last.surv) == (45.0, 0.0)
    assert (last.std_err, last.lower, last.upper) == (None, None, None)


@pytest.mark.parametrize(
    ("conf_type", "ci"), [("log", (1.0, 1.0)), ("plain", (1.0, 1.0)), ("log-log", (None, None))]
)
def test_all_censored_curve_stays_at_one_with_r_ci_and_no_median(
    conf_type: str, ci: tuple[float | None, float | None]
) -> None:
    # S = 1 and se = 0: log and plain give [1, 1]; log-log is NA because log(-log 1) is undefined.
    result = kaplan_meier([3, 5, 7], [0, 0, False], conf_type)  # type: ignore[arg-type]
    assert (result.n, result.n_events) == (3, 0)
    for row in result.rows:
        assert (row.surv, row.std_err, (row.lower, row.upper)) == (1.0, 0.0, ci)
    for p in (0.25, 0.5, 0.75):
        assert tuple(quantile(result, p)) == (None, None, None)


@pytest.mark.parametrize(
    ("scipy_method", "conf_type"), [("linear", "plain"), ("log-log", "log-log")]
)
def test_pointwise_ci_agrees_with_scipy_where_both_are_defined(
    scipy_method: str, conf_type: str
) -> None:
    data = REF["datasets"]["lung"]
    time, died = np.asarray(data["time"], float), np.asarray(data["status"], bool)
    sf = stats.ecdf(stats.CensoredData(uncensored=time[died], right=time[~died])).sf
    band = sf.confidence_interval(0.95, method=scipy_method)
    result = fit("lung", conf_type)
    checked = 0
    for i, row in enumerate(result.rows):
        if 0.0 < row.surv < 1.0:
            assert close(row.lower, float(band.low.probabilities[i]))
            assert close(row.upper, float(band.high.probabilities[i]))
            checked += 1
    assert checked > 150


# --- quantiles and the median ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("print_id", "name"),
    [
        ("aml_print_log", "aml_maintained"),
        ("aml_print_log", "aml_nonmaintained"),
        ("gehan_print_loglog", "gehan_6mp"),
        ("gehan_print_loglog", "gehan_control"),
        ("lung_print_log", "all"),
    ],
)
def test_n_events_median_and_ci_match_r_print(print_id: str, name: str) -> None:
    printed = REF["r_printed"][print_id]
    dataset = "lung" if print_id.startswith("lung") else name
    result = fit(dataset, printed["conf_type"])
    n, events, med, lcl, ucl = printed["rows"][name]
    assert (result.n, result.n_events) == (int(n), int(events))
    assert tuple(median(result)) == (printed_time(med), printed_time(lcl), printed_time(ucl))


@pytest.mark.parametrize("sex", [1, 2])
def test_lung_median_by_sex_matches_r_print(sex: int) -> None:
    data = REF["datasets"]["lung"]
    keep = [i for i, s in enumerate(data["sex"]) if s == sex]
    result = kaplan_meier([data["time"][i] for i in keep], [data["status"][i] for i in keep], "log")
    n, events, med, lcl, ucl = REF["r_printed"]["lung_print_log"]["rows"][f"sex={sex}"]
    assert (result.n, result.n_events) == (int(n), int(events))
    assert tuple(median(result)) == (float(med), float(lcl), float(ucl))


@pytest.mark.parametrize(
    ("name", "conf_type", "p"),
    [
        (name, ct, p)
        for name, by_type in REF["quantiles"].items()
        for ct, by_p in by_type.items()
        for p in by_p
    ],
)
def test_quantiles_match_reference(name: str, conf_type: str, p: str) -> None:
    expected = REF["quantiles"][name][conf_type][p]
    assert tuple(quantile(fit(name, conf_type), float(p))) == tuple(expected)


def test_median_on_flat_half_survival_is_midpoint() -> None:
    # S = 0.75, 0.5, 0.25, 0: S is exactly 0.5 on [2, 3), so R reports (2 + 3) / 2.
    result = kaplan_meier([1, 2, 3, 4], [1, 1, 1, 1], "log")
    assert median(result) == Estimate(2.5, 1.0, None)
    assert quantile(result, 0.25).estimate == 1.5
    assert quantile(result, 0.75).estimate == 3.5


def test_median_flat_stretch_ignores_censor_only_times() -> None:
    # S = 0.5 from t = 2 (tied deaths, one censored at 2) until the death at 4; 3 is a censoring.
    result = kaplan_meier([1, 2, 2, 2, 3, 4], [1, 1, 1, 0, 0, 1])
    assert median(result).estimate == 3.0


def test_median_when_curve_ends_at_half_is_midpoint_to_last_time() -> None:
    # findq's end-of-curve rule: halfway between reaching 0.5 (t = 10) and the last time (20).
    assert median(kaplan_meier([10, 20], [1, 0])).estimate == 15.0


def test_median_when_curve_reaches_half_at_its_last_time_is_that_time() -> None:
    assert median(kaplan_meier([10, 10], [1, 0])).estimate == 10.0


@pytest.mark.parametrize(("n", "median_time"), [(12, 6.5), (24, 12.5)])
def test_median_treats_half_within_tolerance_as_exact(n: int, median_time: float) -> None:
    # n - 2 deaths at 1, 2, … and two censored at 100: S after n/2 deaths is 0.5 only up to
    # rounding (0.5 − 1 ulp for n = 12, 0.5 + 1 ulp for n = 24); R's tolerance √ε absorbs it.
    result = kaplan_meier([*range(1, n - 1), 100, 100], [1] * (n - 2) + [0, 0])
    assert result.rows[n // 2 - 1].surv != 0.5
    assert median(result).estimate == median_time


def test_median_ci_uses_r_sorted_band_lookup_when_upper_band_rises() -> None:
    # Deaths at 1…14, 16, 17; censored at 15. The log upper band falls to 0.4928 at 14 and rises
    # to 0.4952 at 16 (two at risk). R's findq sorts band levels before approx(), so the upper
    # limit is the time of the highest band value at or under 0.5 (16), not the first (14).
    result = kaplan_meier(list(range(1, 18)), [1] * 14 + [0, 1, 1], "log")
    upper = {row.time: row.upper for row in result.rows}
    assert upper[14.0] is not None
    assert upper[16.0] is not None
    assert upper[14.0] < upper[16.0] < 0.5
    assert median(result) == Estimate(9.0, 6.0, 16.0)


@pytest.mark.parametrize("p", [0.0, 1.0, -0.1, 1.5])
def test_quantile_rejects_probability_outside_open_unit_interval(p: float) -> None:
    with pytest.raises(ValueError):
        quantile(fit("aml_maintained"), p)


# --- landmarks and numbers at risk (summary.survfit(times=)) --------------------------------


def test_one_year_survival_matches_r_summary_times() -> None:
    printed = REF["r_printed"]["lung_one_year_log"]
    result = fit("lung", printed["conf_type"])
    n_risk, _, surv, _, lower, upper = printed["row"]
    at = printed["at"]
    estimate = survival_at(result, at)
    assert n_at_risk(result, at) == int(n_risk)
    assert matches_print(estimate.estimate, surv)
    assert matches_print(estimate.lower, lower)
    assert matches_print(estimate.upper, upper)


@pytest.mark.parametrize(
    ("conf_type", "at"),
    [(ct, at) for ct, by_time in REF["lung_landmarks"].items() for at in by_time],
)
def test_landmark_survival_is_last_row_at_or_before_time(conf_type: str, at: str) -> None:
    expected = REF["lung_landmarks"][conf_type][at]
    result = fit("lung", conf_type)
    surv, lower, upper = survival_at(result, float(at))
    assert close(surv, expected["surv"])
    assert close(lower, expected["lower"])
    assert close(upper, expected["upper"])
    assert n_at_risk(result, float(at)) == expected["n_risk"]


def test_survival_before_first_time_is_one_with_unit_ci() -> None:
    result = fit("aml_maintained", "log-log")
    assert tuple(survival_at(result, 5.0)) == (1.0, 1.0, 1.0)
    assert tuple(survival_at(result, -1.0)) == (1.0, 1.0, 1.0)


def test_survival_between_rows_carries_the_last_row() -> None:
    result = fit("aml_maintained")
    row_18 = next(row for row in result.rows if row.time == 18.0)
    assert survival_at(result, 20.0) == Estimate(row_18.surv, row_18.lower, row_18.upper)
    assert survival_at(result, 18.0) == survival_at(result, 22.999)


def test_survival_after_last_time_is_unknown_unless_extended() -> None:
    result = fit("aml_maintained")
    last = result.rows[-1]
    assert tuple(survival_at(result, 161.0)) == (last.surv, last.lower, last.upper)
    assert tuple(survival_at(result, 200.0)) == (None, None, None)
    assert tuple(survival_at(result, 200.0, extend=True)) == (last.surv, last.lower, last.upper)


def test_n_at_risk_counts_subjects_with_time_at_or_after_t() -> None:
    result = fit("aml_maintained")  # 9, 13, 13+, 18, 23, 28+, 31, 34, 45+, 48, 161+
    assert [n_at_risk(result, t) for t in (0, 9, 13, 13.5, 161, 162)] == [11, 11, 10, 8, 1, 0]


# --- output shape and validation ------------------------------------------------------------


def test_result_is_json_serialisable_without_nan() -> None:
    result = fit("aml_nonmaintained", "log-log")
    text = json.dumps(result.to_dict(), allow_nan=False)
    assert json.loads(text)["rows"][-1] == {
        "time": 45.0,
        "n_risk": 1,
        "n_event": 1,
        "n_censor": 0,
        "surv": 0.0,
        "std_err": None,
        "lower": None,
        "upper": None,
    }


def test_result_and_estimates_are_immutable() -> None:
    result = fit("aml_maintained")
    with pytest.raises(AttributeError):
        result.n = 0  # type: ignore[misc]
    with pytest.raises(AttributeError):
        median(result).estimate = 1.0  # type: ignore[misc]


@pytest.mark.parametrize(
    ("times", "events", "kwargs"),
    [
        ([], [], {}),
        ([1, 2], [1], {}),
        ([1, 2], [1, 2], {}),
        ([1, -2], [1, 1], {}),
        ([1, math.nan], [1, 1], {}),
        ([1, math.inf], [1, 1], {}),
        ([1, 2], [1, 1], {"conf_type": "logit"}),
        ([1, 2], [1, 1], {"conf_level": 1.0}),
        ([1, 2], [1, 1], {"conf_level": 0.0}),
    ],
)
def test_invalid_input_is_rejected(
    times: list[float], events: list[int], kwargs: dict[str, Any]
) -> None:
    with pytest.raises(ValueError):
        kaplan_meier(times, events, **kwargs)

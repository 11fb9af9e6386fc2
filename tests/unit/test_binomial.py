"""Exact binomial CIs against R ``binom.test`` output and the Beta-quantile definition."""

from __future__ import annotations

import json
from typing import Any

import pytest
from scipy import stats

from projections.statistics.binomial import clopper_pearson

pytestmark = pytest.mark.unit

TOL = 1e-6


@pytest.mark.parametrize(
    ("k", "n", "lower", "upper"),
    [
        # binom.test(k, n)$conf.int as R prints it (7 significant digits).
        (7, 20, 0.1539092, 0.5921885),
        (0, 10, 0.0, 0.3084971),
        (10, 10, 0.6915029, 1.0),
        # ?binom.test example: binom.test(c(682, 243), p = 3/4)
        (682, 925, 0.7076683, 0.7654066),
    ],
)
def test_ci_matches_r_binom_test(k: int, n: int, lower: float, upper: float) -> None:
    rate, lo, hi = clopper_pearson(k, n)
    assert rate == k / n
    assert lo is not None
    assert hi is not None
    assert abs(lo - lower) <= TOL
    assert abs(hi - upper) <= TOL


@pytest.mark.parametrize("conf_level", [0.80, 0.90, 0.95, 0.99])
@pytest.mark.parametrize("n", [1, 2, 5, 13, 30])
def test_ci_is_the_clopper_pearson_beta_quantiles(n: int, conf_level: float) -> None:
    alpha = 1.0 - conf_level
    for k in range(n + 1):
        est = clopper_pearson(k, n, conf_level)
        want_lo = 0.0 if k == 0 else stats.beta.ppf(alpha / 2, k, n - k + 1)
        want_hi = 1.0 if k == n else stats.beta.ppf(1 - alpha / 2, k + 1, n - k)
        assert est.lower is not None
        assert est.upper is not None
        assert abs(est.lower - want_lo) <= 1e-9, (k, n)
        assert abs(est.upper - want_hi) <= 1e-9, (k, n)


@pytest.mark.parametrize("n", [1, 4, 10, 57])
def test_ci_at_zero_and_all_responders_has_closed_form(n: int) -> None:
    # P(X = 0 | p) = (1 − p)^n = α/2 gives the upper limit at k = 0; by symmetry the lower at k = n.
    edge = 0.025 ** (1 / n)
    none_respond = clopper_pearson(0, n)
    all_respond = clopper_pearson(n, n)
    assert (none_respond.rate, none_respond.lower) == (0.0, 0.0)
    assert none_respond.upper == pytest.approx(1 - edge, abs=1e-12)
    assert (all_respond.rate, all_respond.upper) == (1.0, 1.0)
    assert all_respond.lower == pytest.approx(edge, abs=1e-12)


def test_no_patients_gives_no_rate_and_no_ci() -> None:
    est = clopper_pearson(0, 0)
    assert tuple(est) == (None, None, None)
    assert json.loads(json.dumps(est.to_dict(), allow_nan=False)) == {
        "k": 0,
        "n": 0,
        "rate": None,
        "lower": None,
        "upper": None,
        "conf_level": 0.95,
    }


@pytest.mark.parametrize(
    ("args", "error"),
    [
        ((-1, 5), ValueError),
        ((6, 5), ValueError),
        ((0, -1), ValueError),
        ((1, 5, 1.0), ValueError),
        ((1, 5, 0.0), ValueError),
        ((1.0, 5), TypeError),
        ((True, 5), TypeError),
    ],
)
def test_invalid_counts_or_level_are_rejected(
    args: tuple[Any, ...], error: type[Exception]
) -> None:
    with pytest.raises(error):
        clopper_pearson(*args)


def test_estimate_is_immutable() -> None:
    est = clopper_pearson(3, 9)
    with pytest.raises(AttributeError):
        est.rate = 0.5  # type: ignore[misc]

"""Response rates with exact (Clopper–Pearson) confidence intervals, as R ``binom.test``.

Rule: for k responders out of n, rate = k/n and the two-sided CI at level 1 − α is
[Beta⁻¹(α/2; k, n − k + 1), Beta⁻¹(1 − α/2; k + 1, n − k)], with 0 as the lower limit when
k = 0 and 1 as the upper limit when k = n (Clopper & Pearson, Biometrika 1934; the interval
``binom.test(k, n)$conf.int`` reports). Computed by ``scipy.stats.binomtest(k, n)
.proportion_ci(conf_level, method="exact")``, the DOMAIN.md engine.

With n = 0 there is no rate to estimate: rate and limits are all None (JSON null).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict, dataclass
from typing import Any

from scipy import stats


@dataclass(frozen=True, slots=True)
class BinomialEstimate:
    """A proportion with its exact CI; unpacks as ``rate, lo, hi = ...``."""

    k: int
    n: int
    rate: float | None
    lower: float | None
    upper: float | None
    conf_level: float

    def __iter__(self) -> Iterator[float | None]:
        return iter((self.rate, self.lower, self.upper))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def clopper_pearson(k: int, n: int, conf_level: float = 0.95) -> BinomialEstimate:
    """Rate k/n with its two-sided exact CI, as ``binom.test(k, n, conf.level=conf_level)``."""
    # bool is an int subclass; a True/False count is almost certainly a caller's mistake.
    if (
        isinstance(k, bool)
        or isinstance(n, bool)
        or not isinstance(k, int)
        or not isinstance(n, int)
    ):
        raise TypeError("k and n must be integers")
    if n < 0 or not 0 <= k <= n:
        raise ValueError(f"need 0 <= k <= n, got k={k}, n={n}")
    if not 0.0 < conf_level < 1.0:
        raise ValueError(f"conf_level must be strictly between 0 and 1, got {conf_level!r}")
    if n == 0:
        return BinomialEstimate(k, n, None, None, None, float(conf_level))
    ci = stats.binomtest(k, n).proportion_ci(confidence_level=conf_level, method="exact")
    return BinomialEstimate(k, n, k / n, float(ci.low), float(ci.high), float(conf_level))

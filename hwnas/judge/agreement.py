"""How well an estimate ranks architectures against the truth (their accuracy trained stand-alone): Kendall tau,
Spearman rho and top-k overlap, each with a bootstrap 95 % interval, and the paired difference of two estimates
with its own interval.

The bootstrap resamples the architectures with replacement. Every estimate of one comparison is scored on the
same resamples, so the difference of two estimates' statistics is computed resample by resample: its interval
is that of the difference (a paired comparison), far narrower than the two intervals side by side suggest when
the estimates agree with each other.

Top-k overlap is the share of the k best by the truth that are among the k best by the estimate. Ties are
broken at random, and the overlap is its expected value over those draws (an item tied at the boundary counts
with the probability that it makes the top k), so that it does not depend on the order of the rows. An estimate
(or a truth) that is constant ranks nothing: its statistics are NaN. Chance level, the expected overlap of a
random order, is k / n.

The truth is itself a measurement: each architecture's stand-alone accuracy is the mean of a few trainings, and
trainings of one architecture differ. `reliability` says how far it can be trusted: from the spread between an
architecture's seeds (the noise of one training) and the spread between architectures, the Kendall tau that a
perfect estimator (the architectures' expected accuracy) would reach against these means, its ceiling, and
that of a second measurement with the same number of seeds. For normally distributed accuracies and noise,
tau = (2 / pi) arcsin(r) for a correlation r: the perfect estimator's r is the square root of the reliability
(the share of the between-architecture variance that is not noise), a repeat's r the reliability itself.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy.stats import kendalltau, spearmanr

BOOTSTRAP = 2000
STATISTICS = ("kendall_tau", "spearman_rho", "top_k_overlap")


@dataclass(frozen=True)
class Agreement:
    """One statistic (or the difference of two estimates' statistics) with its bootstrap 95 % interval."""

    value: float
    low: float
    high: float

    def row(self, name: str) -> dict:
        return {f"{name}": round(self.value, 4), f"{name}_low": round(self.low, 4), f"{name}_high": round(self.high, 4)}

    def text(self, signed: bool = False) -> str:
        if math.isnan(self.value):
            return "n/a"
        f = "+.2f" if signed else ".2f"
        return f"{self.value:{f}} [{self.low:{f}}, {self.high:{f}}]"


def top_k(n: int) -> int:
    """The k of top-k overlap for ``n`` architectures: a quarter of them, at least 2."""
    return max(2, n // 4)


def _in_top_k(values: np.ndarray, k: int) -> np.ndarray:
    """Each item's probability of being among the ``k`` largest when ties are broken at random."""
    values = np.asarray(values, float)
    order = np.sort(values)[::-1]
    above = np.searchsorted(-order, -values, side="left")  # items strictly larger
    tied = np.searchsorted(-order, -values, side="right") - above  # items equal, itself included
    return np.clip((k - above) / tied, 0.0, 1.0)


def top_k_overlap(truth: np.ndarray, estimate: np.ndarray, k: int) -> float:
    """The expected share of the ``k`` best by ``truth`` that are among the ``k`` best by ``estimate``, ties
    broken at random; NaN when either is constant (it ranks nothing)."""
    truth, estimate = np.asarray(truth, float), np.asarray(estimate, float)
    if np.ptp(truth) == 0 or np.ptp(estimate) == 0:
        return math.nan
    return float(np.sum(_in_top_k(truth, k) * _in_top_k(estimate, k)) / k)


def statistics(truth: np.ndarray, estimate: np.ndarray, k: int) -> tuple[float, float, float]:
    """Kendall tau (tau-b), Spearman rho and top-k overlap; NaN for a constant truth or estimate."""
    if np.ptp(truth) == 0 or np.ptp(estimate) == 0:
        return math.nan, math.nan, math.nan
    return (float(kendalltau(truth, estimate).statistic), float(spearmanr(truth, estimate).statistic),
            top_k_overlap(truth, estimate, k))


def _interval(values: np.ndarray) -> tuple[float, float]:
    values = values[~np.isnan(values)]
    if not len(values):
        return math.nan, math.nan
    low, high = np.percentile(values, [2.5, 97.5])
    return float(low), float(high)


@dataclass(frozen=True)
class Comparison:
    """Several estimates against one truth: each one's statistics (``agreements[name][statistic]``), and for
    each pair (a, b) in ``pairs`` the paired difference a - b (``differences[(a, b)][statistic]``)."""

    n: int
    k: int
    agreements: dict[str, dict[str, Agreement]]
    differences: dict[tuple[str, str], dict[str, Agreement]]

    @property
    def chance_top_k(self) -> float:
        """Top-k overlap of a random order: k / n."""
        return self.k / self.n

    def difference_rows(self) -> list[dict]:
        return [{"compared": f"{a} - {b}", **{key: value for name, d in diffs.items() for key, value in d.row(name).items()}}
                for (a, b), diffs in self.differences.items()]


@dataclass(frozen=True)
class Reliability:
    """How far a stand-alone truth (per architecture, the mean of its trainings) can be trusted: ``noise_sd`` the
    standard deviation of one training about its architecture's mean, ``spread_sd`` that of the means between
    architectures, ``signal_sd`` the part of it that noise does not explain (0 when noise explains it all);
    ``ceiling`` the Kendall tau a perfect estimator would reach against the means, with a bootstrap 95 %
    interval over architectures; ``repeat`` the tau of a second measurement like this one."""

    n: int
    seeds: float
    noise_sd: float
    spread_sd: float
    signal_sd: float
    ceiling: Agreement
    repeat: float

    def text(self) -> str:
        return (f"a perfect estimator would reach tau {self.ceiling.text()} against these stand-alone means, a second "
                f"training of the same architectures {self.repeat:.2f} (one training's noise sd {self.noise_sd:.2f} "
                f"points, the means' sd between architectures {self.spread_sd:.2f})")

    def row(self) -> dict:
        return {"noise_sd": round(self.noise_sd, 4), "spread_sd": round(self.spread_sd, 4),
                "signal_sd": round(self.signal_sd, 4), "seeds": round(self.seeds, 4),
                **self.ceiling.row("ceiling_kendall_tau"), "repeat_kendall_tau": round(self.repeat, 4)}


def _ceiling(noise: np.ndarray, spread: np.ndarray, inverse_seeds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(tau of a perfect estimator, tau of a repeat) for these variances, element by element; NaN where the means
    do not differ."""
    with np.errstate(divide="ignore", invalid="ignore"):
        share = np.clip((spread - noise * inverse_seeds) / spread, 0.0, 1.0)
    share = np.where(spread > 0, share, np.nan)
    return 2 / np.pi * np.arcsin(np.sqrt(share)), 2 / np.pi * np.arcsin(share)


def reliability(trainings: Sequence[Sequence[float]], *, seed: int = 0,
                samples: int = BOOTSTRAP) -> Reliability | None:
    """How far the stand-alone means of ``trainings`` (per architecture, the accuracy of each of its trainings)
    can be trusted; None when no architecture was trained more than once (the noise is then unknown) or there
    are fewer than 3 architectures. The interval resamples architectures (a resample without one trained twice
    is left out)."""
    arrays = [np.asarray(t, float) for t in trainings]
    if len(arrays) < 3 or not any(len(a) > 1 for a in arrays):
        return None
    counts = np.array([len(a) for a in arrays])
    means = np.array([a.mean() for a in arrays])
    variances = np.array([a.var(ddof=1) if len(a) > 1 else 0.0 for a in arrays])
    several = (counts > 1).astype(float)
    index = np.vstack([np.arange(len(arrays)), np.random.default_rng(seed).integers(0, len(arrays),
                                                                                    size=(samples, len(arrays)))])
    with np.errstate(divide="ignore", invalid="ignore"):
        noise = (variances[index] * several[index]).sum(1) / several[index].sum(1)
    spread = means[index].var(axis=1, ddof=1)
    inverse = (1 / counts)[index].mean(1)
    ceiling, repeat = _ceiling(noise, spread, inverse)
    draws = ceiling[1:][np.isfinite(noise[1:])]
    return Reliability(len(arrays), float(1 / inverse[0]), math.sqrt(noise[0]), math.sqrt(spread[0]),
                       math.sqrt(max(0.0, spread[0] - noise[0] * inverse[0])),
                       Agreement(float(ceiling[0]), *_interval(draws)), float(repeat[0]))


def compare(truth: Sequence[float], estimates: Mapping[str, Sequence[float]], *,
            pairs: Sequence[tuple[str, str]] = (), seed: int = 0, samples: int = BOOTSTRAP) -> Comparison:
    """Every estimate against ``truth`` and the paired differences of ``pairs``, on the same ``samples``
    bootstrap resamples (resamples in which a statistic is undefined are left out of its interval)."""
    truth_a = np.asarray(truth, float)
    arrays = {name: np.asarray(values, float) for name, values in estimates.items()}
    n = len(truth_a)
    k = top_k(n)
    resamples = np.random.default_rng(seed).integers(0, n, size=(samples, n))
    points = {name: statistics(truth_a, a, k) for name, a in arrays.items()}
    draws = {name: np.array([statistics(truth_a[i], a[i], k) for i in resamples]).reshape(samples, 3)
             for name, a in arrays.items()}
    agreements = {name: {stat: Agreement(points[name][j], *_interval(draws[name][:, j]))
                         for j, stat in enumerate(STATISTICS)} for name in arrays}
    differences = {}
    for a, b in pairs:
        differences[(a, b)] = {stat: Agreement(points[a][j] - points[b][j], *_interval(draws[a][:, j] - draws[b][:, j]))
                               for j, stat in enumerate(STATISTICS)}
    return Comparison(n, k, agreements, differences)


def agreement(truth: Sequence[float], estimate: Sequence[float], *, seed: int = 0,
              samples: int = BOOTSTRAP) -> dict[str, Agreement]:
    """Kendall tau, Spearman rho and top-k overlap of one ``estimate`` against ``truth``, with intervals."""
    return compare(truth, {"estimate": estimate}, seed=seed, samples=samples).agreements["estimate"]

"""`Errors`: how well one latency predictor matches measured whole networks (the figures `hwnas validate`
and `hwnas table adapt` report side by side)."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy.stats import kendalltau


@dataclass(frozen=True)
class Errors:
    """Accuracy of one predictor on the held-out architectures."""

    mean_abs_pct: float
    within_5: float
    within_10: float
    kendall_tau: float

    @classmethod
    def of(cls, predicted: np.ndarray, measured: np.ndarray) -> "Errors":
        rel = np.abs(predicted - measured) / measured
        tau = kendalltau(predicted, measured).statistic if len(measured) > 1 else float("nan")
        return cls(float(100 * rel.mean()), float((rel <= 0.05).mean()), float((rel <= 0.10).mean()), float(tau))

    def to_dict(self) -> dict:
        return asdict(self)

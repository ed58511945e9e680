"""Ridge regression whose penalty is chosen by leave-one-out error, in closed form (numpy only).

The accuracy predictor (`hwnas.search.predictor`) is a ridge regression on an architecture's op choices and
size. Ridge has one setting, the penalty, and its leave-one-out residuals need no refitting: with the thin
SVD ``X = U S V^T`` of the centred and scaled features, the fit for penalty ``lam`` is
``y_hat = U diag(s^2 / (s^2 + lam)) U^T y`` and the i-th leave-one-out residual is
``(y_i - y_hat_i) / (1 - h_ii)`` with ``h_ii = 1/n + sum_k U_ik^2 s_k^2 / (s_k^2 + lam)``, so a whole grid
of penalties costs one SVD. A column's ``weight`` scales its penalty: a weight of 0.001 leaves it almost
unpenalised (a calibration term), and the columns of weight 1 shrink together.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from hwnas.errors import ConfigError

#: penalties tried, relative to the number of samples (the features are standardised)
GRID = np.logspace(-4, 3, 36)
#: the largest magnitude a saved fit's numbers may have: no fit on standardised features and log sizes comes
#: near it, and larger ones (an edited file) overflow to inf and nan in a prediction
LARGEST = 1e12


@dataclass(frozen=True)
class RidgeFit:
    """``y ~ intercept + ((x - mean) / scale) @ coef``; ``penalty`` is the one leave-one-out chose and
    ``loo_rmse`` its root mean squared leave-one-out error."""

    mean: np.ndarray
    scale: np.ndarray
    coef: np.ndarray
    intercept: float
    penalty: float
    loo_rmse: float

    def predict(self, x: np.ndarray) -> np.ndarray:
        return self.intercept + ((np.asarray(x, float) - self.mean) / self.scale) @ self.coef

    def to_dict(self) -> dict:
        return {"mean": self.mean.tolist(), "scale": self.scale.tolist(), "coef": self.coef.tolist(),
                "intercept": self.intercept, "penalty": self.penalty, "loo_rmse": self.loo_rmse}

    @classmethod
    def from_dict(cls, data: dict, columns: int, where: str) -> RidgeFit:
        arrays = {}
        for name in ("mean", "scale", "coef"):
            value = np.asarray(data.get(name), dtype=float) if isinstance(data.get(name), list) else None
            if value is None or value.shape != (columns,) or not np.isfinite(value).all():
                raise ConfigError(f"{where} must hold {name!r} as {columns} finite numbers, but does not")
            if (np.abs(value) > LARGEST).any():
                raise ConfigError(f"{where} must hold {name!r} as numbers of magnitude at most {LARGEST:g}, but has "
                                  f"{value[np.abs(value) > LARGEST][0]:g}")
            arrays[name] = value
        if not (arrays["scale"] >= 1 / LARGEST).all():
            raise ConfigError(f"{where} must hold scales of at least {1 / LARGEST:g}, but has "
                              f"{arrays['scale'][arrays['scale'] < 1 / LARGEST][0]:g}")
        numbers = {}
        for name in ("intercept", "penalty", "loo_rmse"):
            value = data.get(name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not np.isfinite(value):
                raise ConfigError(f"{where} must hold {name!r} as a finite number, but has {value!r}")
            if abs(value) > LARGEST:
                raise ConfigError(f"{where} must hold {name!r} as a number of magnitude at most {LARGEST:g}, but has "
                                  f"{value:g}")
            numbers[name] = float(value)
        return cls(arrays["mean"], arrays["scale"], arrays["coef"], **numbers)


def fit_ridge(x: np.ndarray, y: np.ndarray, weights: Sequence[float] | None = None,
              grid: Sequence[float] = GRID, allow_infinite: bool = False) -> RidgeFit:
    """The ridge fit of ``y`` on ``x`` whose penalty (``grid`` times the number of samples, scaled per column
    by ``weights``) has the least leave-one-out error; with ``allow_infinite`` the columns of weight 1 may
    also be dropped altogether (an infinite penalty: their coefficients are 0), which few samples often prefer."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    n, d = x.shape
    if n < 3:
        raise ConfigError(f"a ridge fit needs at least 3 samples, but got {n}")
    if len(y) != n or not np.isfinite(x).all() or not np.isfinite(y).all():
        raise ConfigError("a ridge fit needs one finite target per row of finite features")
    weights_a = np.ones(d) if weights is None else np.asarray(weights, float)
    mean = x.mean(axis=0)
    spread = x.std(axis=0)
    scale = np.where(spread > 1e-12, spread, 1.0)
    # a column's penalty weight w acts as scaling it by 1 / sqrt(w): small weights, little shrinkage
    z = (x - mean) / scale / np.sqrt(weights_a)
    y_mean = float(y.mean())
    yc = y - y_mean
    best = (float(np.mean((yc / (1 - 1.0 / n)) ** 2)), 0.0, np.zeros(d, bool), None)  # the intercept alone
    subsets = [np.ones(d, bool)] + ([weights_a < 1] if allow_infinite and (weights_a < 1).any() else [])
    for columns in subsets:
        u, s, vt = np.linalg.svd(z[:, columns], full_matrices=False)
        uty = u.T @ yc
        for lam in np.asarray(grid, float) * n:
            shrink = s ** 2 / (s ** 2 + lam)
            hat = 1.0 / n + (u ** 2) @ shrink
            loo = (yc - u @ (shrink * uty)) / np.clip(1 - hat, 1e-9, None)
            error = float(np.mean(loo ** 2))
            if error < best[0]:
                best = (error, float(lam), columns, (s, vt, uty))
    error, lam, columns, parts = best
    coef = np.zeros(d)
    if parts is not None:
        s, vt, uty = parts
        coef[columns] = (vt.T @ ((s / (s ** 2 + lam)) * uty)) / np.sqrt(weights_a[columns])
    return RidgeFit(mean, scale, coef, y_mean, lam, float(np.sqrt(error)))


def out_of_fold(x: np.ndarray, y: np.ndarray, folds: int, seed: int = 0, **fit: object) -> np.ndarray:
    """Predictions of every sample by a ridge fit (penalty chosen on the rest) that never saw it: ``folds``
    random folds, or leave-one-out when ``folds`` is at least the number of samples."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    n = len(y)
    order = np.random.default_rng(seed).permutation(n)
    k = min(folds, n)
    out = np.empty(n)
    for part in np.array_split(order, k):
        rest = np.setdiff1d(order, part)
        out[part] = fit_ridge(x[rest], y[rest], **fit).predict(x[part])  # type: ignore[arg-type]
    return out

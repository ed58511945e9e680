"""The fit behind `hwnas table adapt` (the model is described in `hwnas.tables.adapt`): ridge on relative errors,
constrained so that every block coefficient and the common scale are >= FLOOR and the intercept >= 0, and the
cross-validation that chooses its ridge strengths and yields its held-out predictions.

Constrained fit: minimise ``0.5 b'Ab - r'b`` (``A = X'X + n diag(pen)`` on relative errors, ``r = X'1``, so
the same objective as plain ridge) subject to ``G b >= h``, where the rows of ``G`` pick the intercept (>= 0),
the scale ``s`` and every block coefficient ``c = M theta`` (>= FLOOR). The floor is small and positive: a
coefficient at it says the measurements price that block at (almost) nothing beyond what the others explain;
exactly 0 would make the block free to every search and its ratio to the source table (`table compare`)
infinite. When the unconstrained solution ``b0`` meets the constraints (the usual case) it is the answer.
Otherwise the dual, the linear complementarity problem ``w = Q lam + G b0 - h >= 0, lam >= 0, lam'w = 0``
with ``Q = G A^-1 G'`` (positive definite: every block has a parameter of its own, so ``G`` has full row
rank), is solved exactly by a Lawson-Hanson active set, and ``b = b0 + A^-1 G' lam``.
Every cross-validation fit, the ones that choose the ridge strengths and the ones that predict the held-out
networks, is this constrained fit.

Folds: ``k`` folds when every fold holds MIN_PER_FOLD networks, else leave-one-out (from MIN_NETWORKS up);
the ridge strengths of each outer fold are chosen by the same scheme on its training networks. Near-ties
go to the stronger shrinkage (towards the host table times the common scale): a weaker strength is taken
only when its cross-validated loss is lower by more than one standard error of that loss (and more than
TIE), which keeps few measurements from moving the table on noise: from 10 networks of a target that is the
host times 1.3 plus 2 % noise, the loss minimum alone let the coefficients spread 0.56..2.07; with this rule
all are the common scale.

Reduced model: the strongest shrinkage of all is the source table times one scale plus an offset (every
deviation and price 0). It is chosen instead of the whole model when its cross-validated loss on the same folds
is within one standard error (and TIE) of the best the ridge grid reached, in every outer fold as on all the
measurements, so the held-out figures include that choice. From 10 networks of HW-NAS-Bench's Raspberry Pi 4,
adapting a `litert` table of the host, the whole model's weak stage ridge ranked 1000 other networks at Kendall
tau 0.671 (one seed; 0.761 over three) where scale + offset ranked them at 0.820; with the reduced model among
the choices, 0.820 over the three. It is not free: from the host's `ort-mobile` table with the Pixel 3's beside,
the whole models it set aside had ranked the Pi 4 at 0.819, the reduced ones 0.774.
The reduced model's intercept may be negative (as scale + offset's offset): it is bounded so that the cheapest
network of the space is predicted at no less than FLOOR times its scaled block sum.
A second safeguard was tried and rejected: writing the reduced model also when the whole procedure (ridge
strengths and this choice made inside every fold) had no lower nested cross-validated squared error. It rescued
the runs it was meant for (the synthetic target, one seed of 10 networks: 0.406 -> 0.533) but on the Pixel 3 from
the host's `ort-mobile` table it threw away whole models that ranked 1000 other networks at 0.919-0.923 for the
reduced model's 0.838-0.844 (squared error is not ranking: the whole model's was 0.6-1.7 standard errors worse):
over three seeds 0.894 -> 0.841 from 10 networks.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.linalg import cho_factor, cho_solve
from scipy.optimize import minimize
from threadpoolctl import threadpool_limits

from hwnas.errors import ConfigError, DataError

#: the shrunk levels of a coefficient, each with its own ridge strength
LEVELS = ("op", "stage", "op_stage", "block")
#: fewest distinct networks per cross-validation fold; with fewer, the held-out figures are leave-one-out
MIN_PER_FOLD = 5
#: fewest distinct measured networks `table adapt` accepts (leave-one-out then trains on 9 of them)
MIN_NETWORKS = 10
#: the smallest block coefficient (and common scale): no block is priced below 1 % of its source latency
FLOOR = 0.01
#: ridge strengths tried, per measured network, on relative errors (coefficients are dimensionless)
RIDGE_GRID = tuple(float(10.0 ** e) for e in range(-8, 2))
#: a weaker ridge strength is chosen only when its cross-validated loss is lower by more than this share, and
#: by more than ONE_SE standard errors of that loss (the "one standard error" rule)
TIE = 0.01
ONE_SE = 1.0


def one_blas_thread() -> threadpool_limits:
    """The BLAS of numpy and scipy on one thread while the block, restored after (threadpoolctl).

    The fits are thousands of solves with matrices of at most a few hundred rows, where threads cost more than
    they bring; and beside a busy core a threaded call waits for the thread that shares it: measured on a
    shared 2-core machine, a 161 x 161 Cholesky factorisation took 4-15 ms on 2 threads and 0.1 ms on one, and
    `table adapt` from 20 networks 112 s against 12 s."""
    return threadpool_limits(limits=1, user_api="blas")


def fold_count(n: int, folds: int, source: str = "the measurements") -> int:
    """Folds used for ``n`` networks when ``folds`` were asked for: ``folds`` when each holds MIN_PER_FOLD
    networks, else ``n`` (leave-one-out). Fewer than MIN_NETWORKS networks is a DataError."""
    if folds < 2:
        raise ConfigError(f"cross-validation needs at least 2 folds, but got folds={folds}")
    if n < MIN_NETWORKS:
        raise DataError(f"table adapt needs at least {MIN_NETWORKS} distinct measured networks (leave-one-out "
                        f"below {MIN_PER_FOLD * folds} for {folds} folds), but {source} holds {n}")
    return folds if n >= MIN_PER_FOLD * folds else n


def spread(raw: np.ndarray, table, source: str) -> np.ndarray:
    """``raw``, the measured networks' block sums in ``table``, when they differ; when all are (almost) equal the
    table's blocks do not tell the networks apart (neither its scale nor its offset can be fitted): a DataError."""
    if len(raw) and float(np.ptp(raw)) <= 1e-9 * max(float(np.abs(raw).max()), 1e-300):
        raise DataError(f"table adapt needs a table whose blocks tell the measured networks apart, but every network "
                        f"in {source} sums to the same {float(raw[0]):g} ms in {table._name()} (do all its blocks "
                        f"have the same latency?)")
    return raw


def scheme(folds: int, n: int) -> str:
    """``5-fold`` or ``leave-one-out``."""
    return "leave-one-out" if folds == n else f"{folds}-fold"


def penalty(levels: np.ndarray, ridge: tuple[float, ...]) -> np.ndarray:
    """Per column of [intercept, s, u, v, w, z]: intercept and s are not shrunk."""
    return np.concatenate([[0.0], np.where(levels < 0, 0.0, np.asarray(ridge)[np.maximum(levels, 0)])])


def constraints(m: np.ndarray, extra: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(G, h) over b = [intercept, theta, prices] with G b >= h: intercept >= 0, s >= FLOOR, every coefficient
    M theta >= FLOOR and each of the ``extra`` prices (of MACs) >= 0."""
    rows, cols = m.shape
    g = np.zeros((rows + 2 + extra, cols + 1 + extra))
    g[0, 0] = g[1, 1] = 1.0
    g[2:rows + 2, 1:cols + 1] = m
    g[rows + 2:, cols + 1:] = np.eye(extra)
    return g, np.r_[0.0, np.full(rows + 1, FLOOR), np.zeros(extra)]


def _factor(a: np.ndarray):
    for jitter in (0.0, 1e-12, 1e-9, 1e-6):
        try:  # singular when the networks do not tell the intercept from the scale: a little jitter decides
            return cho_factor(a + jitter * max(float(np.mean(np.diag(a))), 1e-300) * np.eye(len(a)),
                              check_finite=False)
        except np.linalg.LinAlgError:
            continue
    raise DataError("table adapt could not fit the measurements: its normal equations are singular even with "
                    "jitter (are the latencies finite and the networks distinct?)")


def _complementarity(q_mat: np.ndarray, q: np.ndarray) -> np.ndarray:
    """lam >= 0 with w = q_mat @ lam + q >= 0 and lam'w = 0, for positive definite q_mat (Lawson-Hanson)."""
    k = len(q)
    tol = 1e-12 * max(1.0, float(np.abs(q).max()))
    lam, free = np.zeros(k), np.zeros(k, bool)
    for _ in range(3 * k + 10):
        w = q_mat @ lam + q
        candidates = np.where(free, np.inf, w)
        j = int(np.argmin(candidates))
        if candidates[j] >= -tol:
            return lam
        free[j] = True
        for _ in range(k + 1):
            idx = np.flatnonzero(free)
            z = np.zeros(k)
            z[idx] = np.linalg.solve(q_mat[np.ix_(idx, idx)], -q[idx])
            if np.all(z[idx] > 0):
                lam = z
                break
            low = idx[z[idx] <= 0]
            step = lam[low] / (lam[low] - z[low])
            lam = lam + float(step.min()) * (z - lam)
            lam[low[np.argmin(step)]] = 0.0
            free &= lam > 0
            if not free.any():
                break
        else:
            break
    # not settled (degenerate): the same problem, solved by a general bound-constrained method
    res = minimize(lambda v: 0.5 * v @ q_mat @ v + q @ v, lam, jac=lambda v: q_mat @ v + q, method="L-BFGS-B",
                   bounds=[(0.0, None)] * k, options={"maxiter": 10_000, "ftol": 1e-15, "gtol": 1e-12})
    return np.maximum(res.x, 0.0)


Bounds = tuple[np.ndarray, np.ndarray]


def solve(gram: np.ndarray, rhs: np.ndarray, n: int, pen: np.ndarray, bounds: Bounds | None) -> np.ndarray:
    """argmin of ``0.5 b'(gram + n diag(pen)) b - rhs'b``, subject to ``G @ b >= h`` for ``bounds = (G, h)``
    unless it is None."""
    factor = _factor(gram + n * np.diag(pen))
    b0 = cho_solve(factor, rhs, check_finite=False)
    if bounds is None:
        return b0
    g, h = bounds
    q = g @ b0 - h
    if q.min() >= 0:
        return b0
    step = cho_solve(factor, g.T, check_finite=False)
    return b0 + step @ _complementarity(g @ step, q)


def fit(x: np.ndarray, y: np.ndarray, pen: np.ndarray, bounds: Bounds | None) -> np.ndarray:
    """Ridge on relative errors: minimise sum((1 - x @ b / y)^2) + n * sum(pen * b^2), subject to ``bounds``
    (None: unconstrained, the model before constraints, kept for comparison)."""
    xr = x / y[:, None]
    return solve(xr.T @ xr, xr.sum(axis=0), len(y), pen, bounds)


def split(n: int, k: int, rng: np.random.Generator) -> list[np.ndarray]:
    return [np.sort(f) for f in np.array_split(rng.permutation(n), k)]


def reduced_bounds(lowest: float) -> Bounds:
    """(G, h) of the reduced model ``intercept + s * searchable sum``: s >= FLOOR, and the cheapest network of the
    space (searchable sum ``lowest``) predicted at >= FLOOR times its scaled sum, so that the intercept may be
    negative (a target faster than the source on a fixed cost: what scale + offset fits) but no prediction is."""
    return np.array([[1.0, (1.0 - FLOOR) * lowest], [0.0, 1.0]]), np.array([0.0, FLOOR])


def fit_choice(x: np.ndarray, y: np.ndarray, levels: np.ndarray, g: Bounds, small: Bounds,
               choice: "Choice") -> np.ndarray:
    """The constrained fit of ``choice``: the whole model at its ridge strengths (bounds ``g``), or the reduced one
    (intercept and scale within bounds ``small``, every other parameter 0)."""
    if not choice.reduced:
        return fit(x, y, penalty(levels, choice.ridge), g)
    out = np.zeros(x.shape[1])
    out[:2] = fit(x[:, :2], y, np.zeros(2), small)
    return out


@dataclass(frozen=True)
class Choice:
    """What cross-validation chose: ridge strengths per level, and whether the reduced model (the source table
    times one scale plus an offset) is used instead, because the whole model did not beat it by more than one
    standard error of its cross-validated loss."""

    ridge: tuple[float, ...]
    reduced: bool
    loss: float  # mean cross-validated squared relative error of the whole model at ``ridge``
    reduced_loss: float


def choose(x: np.ndarray, y: np.ndarray, levels: np.ndarray, g: Bounds, small: Bounds, k: int,
           rng: np.random.Generator) -> Choice:
    """Ridge strengths per level with the smallest ``k``-fold (at most leave-one-out) squared relative error of
    the constrained fit: from the middle of the grid, each level in turn moves to the strongest grid value whose
    loss is within one standard error (and TIE) of that level's best, until a sweep moves none. Then the reduced
    model (intercept and scale) is chosen instead when its loss on the same folds is within one standard error
    (and TIE) of the best loss seen: it is the strongest shrinkage of all."""
    parts = []
    for test in split(len(y), min(k, len(y)), rng):
        train = np.setdiff1d(np.arange(len(y)), test)
        xr = x[train] / y[train, None]
        parts.append((xr.T @ xr, xr.sum(axis=0), len(train), x[test], y[test]))
    errors: dict[tuple[int, ...], np.ndarray] = {}

    def loss(at: tuple[int, ...]) -> float:
        if at not in errors:
            pen = penalty(levels, tuple(RIDGE_GRID[i] for i in at))
            errors[at] = np.concatenate([((xt @ solve(gr, r, n, pen, g) - yt) / yt) ** 2 for gr, r, n, xt, yt in parts])
        return float(errors[at].sum())

    def margin(at: tuple[int, ...]) -> float:
        return max(TIE * loss(at), ONE_SE * float(np.sqrt(len(y)) * errors[at].std()))

    at = (len(RIDGE_GRID) // 2,) * len(LEVELS)
    for _ in range(4):
        before = at
        for level in range(len(LEVELS)):
            options = [at[:level] + (i,) + at[level + 1:] for i in range(len(RIDGE_GRID))]
            best = min(options, key=loss)
            at = max(o for o in options if loss(o) <= loss(best) + margin(best))  # the strongest near-best
        if at == before:
            break
    reduced_loss = float(np.concatenate([((xt[:, :2] @ solve(gr[:2, :2], r[:2], n, np.zeros(2), small) - yt) / yt)
                                         ** 2 for gr, r, n, xt, yt in parts]).sum())
    best = min(errors, key=loss)
    return Choice(tuple(RIDGE_GRID[i] for i in at), reduced_loss <= loss(best) + margin(best),
                  loss(at) / len(y), reduced_loss / len(y))


def held_out(x: np.ndarray, y: np.ndarray, levels: np.ndarray, g: Bounds, small: Bounds, k: int,
             rng: np.random.Generator) -> tuple[list[np.ndarray], np.ndarray, int]:
    """(the folds, each network's prediction by the constrained model whose ridge strengths and whole-or-reduced
    choice were made, and whose coefficients were fitted, on the other folds only, and how many folds chose the
    reduced model)."""
    n = len(y)
    out, folds, reduced_in = np.empty(n), split(n, k, rng), 0
    for test in folds:
        train = np.setdiff1d(np.arange(n), test)
        choice = choose(x[train], y[train], levels, g, small, k, rng)
        out[test] = x[test] @ fit_choice(x[train], y[train], levels, g, small, choice)
        reduced_in += choice.reduced
    return folds, out, reduced_in

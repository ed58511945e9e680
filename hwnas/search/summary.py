"""What a search found, in one row per target, and how far its accuracies can be told apart.

An accuracy measured on n validation images has a binomial standard error of sqrt(p (1 - p) / n); two
candidates whose accuracies differ by less than about twice that are not told apart by the evaluation, and
the summary says so rather than letting the ranking look meaningful.
"""

from __future__ import annotations

import math
from typing import Any

from hwnas.search.base import ranked
from hwnas.search.results import energy_column, latency_column
from hwnas.search.runner import SearchResult


def standard_error(accuracy_pct: float, samples: int | None) -> float | None:
    """The standard error (percentage points) of an accuracy measured on ``samples`` images."""
    if not samples:
        return None
    p = min(max(accuracy_pct / 100, 0.0), 1.0)
    return 100 * math.sqrt(p * (1 - p) / samples)


def summary_row(result: SearchResult) -> dict[str, Any]:
    """Target, counts, the best candidate with its standard error and its lead over the runner-up, its
    latency on every table, MACs, params and architecture."""
    top = ranked(result.candidates)[:2]
    row: dict[str, Any] = {"target_ms": result.config["target_latency_ms"], "candidates": len(result.candidates),
                           "feasible": len(result.feasible), "evaluated_now": result.evaluations}
    if not top:
        return row
    best = top[0]
    if best.rescored is not None:  # a predictor-driven search: the supernet's re-scoring chose the best
        samples = (((result.config.get("rescore") or {}).get("evaluator")) or {}).get("val_samples")
        score = {id(c): c.rescored for c in top}
        row["scored_by"] = "supernet (re-scored)"
    else:
        samples = (result.config.get("evaluator") or {}).get("val_samples")
        score = {id(c): c.accuracy for c in top}
        row["scored_by"] = best.estimator
    runner_up = top[1] if len(top) > 1 and score[id(top[1])] is not None else None
    row["ahead_of"] = ahead_of(result, samples)
    se = standard_error(score[id(best)], samples) if best.estimator == "supernet" or best.rescored is not None else None
    row.update({"best_accuracy": round(score[id(best)], 2), "se": None if se is None else round(se, 2),
                "lead": round(score[id(best)] - score[id(runner_up)], 2) if runner_up is not None else None,
                **{latency_column(label): round(ms, 4) for label, ms in zip(result.labels, best.latency_ms)},
                **{energy_column(label): round(mj, 4) for label, mj in zip(result.labels, best.energy_mj) if mj is not None},
                "macs": best.macs, "params": best.params, "arch": str(best.arch)})
    return row


def ahead_of(result: SearchResult, samples: int | None, runners_up: int = 4) -> str | None:
    """How the returned architecture compares with its runners-up: of the next ``runners_up`` (the other
    re-scored ones in a predictor-driven search), how many it leads by more than two standard errors of the
    difference; None without a standard error (a predictor's estimate has none)."""
    top = ranked(result.candidates)
    if not top or not samples:
        return None
    rescored = top[0].rescored is not None
    if not rescored and top[0].estimator != "supernet":
        return None
    others = [c for c in top[1:] if (c.rescored is not None) == rescored][:runners_up]
    if not others:
        return None
    value = (lambda c: c.rescored) if rescored else (lambda c: c.accuracy)
    best = value(top[0])
    se_best = standard_error(best, samples) or 0.0
    clear = sum(best - value(c) > 2 * math.hypot(se_best, standard_error(value(c), samples) or 0.0) for c in others)
    return f"{clear} of {len(others)} by > 2 SE"


def noise_note(row: dict[str, Any], samples: int | None) -> str | None:
    """A sentence when the best and the runner-up of ``row`` lie within two standard errors of each other."""
    if row.get("se") is None or row.get("lead") is None or row["lead"] >= 2 * row["se"]:
        return None
    return (f"the best and the runner-up differ by {row['lead']:.2f} points, less than twice the standard error of "
            f"the evaluation ({row['se']:.2f} points over {samples} validation images): they cannot be told "
            f"apart; more validation images (the full data set, a larger --val-fraction) may separate them")

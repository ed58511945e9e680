"""Conformance suite of search strategies (`hwnas.search.STRATEGIES`): the `hwnas.search.SearchStrategy` contract.

Every strategy runs on the same synthetic problem (`search_problem`: a ProxylessNAS space, whose layers
offer 6 or 7 ops, a made-up table file, an accuracy that grows with MACs) and must:

- propose only architectures of the space, each recorded once, with the best among them (`check_results`);
- evaluate each architecture once: a second search with the same evaluator takes everything from its
  cache and, the same seed giving the same candidates in the same order, evaluates nothing;
- report every candidate's feasibility, latencies on every table, MACs and parameters truthfully, and
  find a feasible best that is the most accurate feasible candidate (`check_constraint`);
- refuse a target below the space's fastest architecture with `hwnas.errors.ConfigError` naming that
  latency (`check_unreachable_target`);
- take JSON-serialisable settings and refuse unknown ones (`check_settings`);
- when interrupted after its first step and run again on the same output directory, evaluate only what
  the saved state lacks, end as an uninterrupted search, and leave every candidate in the directory's
  ``candidates.csv`` (`check_resumable`).

A new strategy: register it and give it an entry in `FAST_SETTINGS` (settings that finish in a few
seconds), or pass ``settings=`` to `check_search_strategy`. A strategy that trains gets the problem's
``training`` settings (tiny synthetic data matching the space) through `run_search`'s ``training=``.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hwnas.errors import ConfigError
from hwnas.search import STRATEGIES, SearchResult, load_search, run_search
from hwnas.space import SearchSpace, get_space
from hwnas.supernet.evaluator import Evaluator
from hwnas.tables import LookupTable
from hwnas.testing.standins import SyntheticEvaluator, synthetic_table
from hwnas.training.config import RunConfig

#: settings with which each registered strategy finishes in a few seconds on `search_problem`
FAST_SETTINGS: dict[str, dict[str, Any]] = {
    "random": {"samples": 40, "chunk": 16},
    "evolution": {"population": 12, "generations": 4, "parents": 4},
    "differentiable": {"epochs": 1, "warmup_epochs": 1},
}


@dataclass(frozen=True)
class SearchProblem:
    """The space, a constraining table file, a second table ("phone"), the median latency of random
    architectures on the first (a target about half of the space meets) and the training settings of
    a strategy that trains."""

    space: SearchSpace
    table: LookupTable
    phone_table: LookupTable
    median_ms: float
    training: RunConfig


def search_problem(work_dir: str | Path, *, width: float = 0.5, resolution: int = 16) -> SearchProblem:
    """The synthetic problem of this suite, its tables written into ``work_dir``."""
    work_dir = Path(work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    space = get_space("proxylessnas", "cifar10", width=width, resolution=resolution)
    table = synthetic_table(space, device="cpu", path=work_dir / "cpu.jsonl")
    phone = synthetic_table(space, device="phone", ms_per_mmac=0.05, overhead_ms=0.02, path=work_dir / "phone.jsonl")
    rng = random.Random(123)
    indices = np.array([space.indices(space.sample(rng)) for _ in range(2000)])
    training = RunConfig(space=space.name, dataset="synthetic", synthetic_size=16, synthetic_like=space.profile.name,
                         resolution=space.profile.resolution, width=space.config["width"], steps_per_epoch=1,
                         batch_size=4)
    return SearchProblem(space, table, phone, float(np.median(table.predict_indices(indices))), training)


def fast_settings(name: str) -> dict[str, Any]:
    assert name in FAST_SETTINGS, f"search strategy {name!r} must have an entry in FAST_SETTINGS (settings that " \
                                  f"finish in a few seconds), but has none"
    return FAST_SETTINGS[name]


def search(name: str, problem: SearchProblem, *, settings: dict[str, Any] | None = None, target_ms: float | None = None,
           tables: list[LookupTable] | None = None, seed: int = 0, evaluator: Evaluator | None = None,
           **kwargs: Any) -> SearchResult:
    """One search of ``problem`` by strategy ``name`` (default target: the median latency)."""
    strategy = STRATEGIES.create(name, **(fast_settings(name) if settings is None else settings))
    return run_search(strategy, space=problem.space, tables=tables or [problem.table],
                      target_ms=problem.median_ms if target_ms is None else target_ms, seed=seed,
                      evaluator=evaluator if evaluator is not None else SyntheticEvaluator(problem.space),
                      references=False, training=problem.training, **kwargs)


def trace(result: SearchResult) -> list[tuple]:
    """What must repeat exactly: every candidate in order, with its scores and where it came from."""
    return [(str(c.arch), c.accuracy, c.latency_ms, c.generation, c.origin) for c in result.candidates]


def check_search_strategy(name: str, work_dir: str | Path, *, settings: dict[str, Any] | None = None,
                          problem: SearchProblem | None = None) -> None:
    """Every check of this module for strategy ``name``; ``work_dir`` receives the tables and search directories."""
    work_dir = Path(work_dir)
    problem = problem or search_problem(work_dir / "problem")
    check_settings(name, settings)
    check_unreachable_target(name, problem, settings=settings)
    whole = check_results(name, problem, settings=settings)
    check_resumable(name, problem, work_dir / f"{name}-search", settings=settings, whole=whole)
    check_constraint(name, problem, settings=settings)


def check_results(name: str, problem: SearchProblem, *, settings: dict[str, Any] | None = None,
                  seed: int = 3) -> SearchResult:
    """Candidates lie in the space, each once; each is evaluated once; the same seed repeats the search.
    Returns the first search."""
    space, evaluator = problem.space, SyntheticEvaluator(problem.space)
    result = search(name, problem, settings=settings, seed=seed, evaluator=evaluator)
    assert result.candidates and result.best is not None, \
        f"search strategy {name!r} must record candidates and find a best one, but recorded " \
        f"{len(result.candidates)} and best={result.best}"
    outside = [str(c.arch) for c in result.candidates if space.validate(c.arch) != c.arch]
    assert not outside, f"search strategy {name!r} must propose architectures of the space, but proposed {outside[:3]}"
    archs = [str(c.arch) for c in result.candidates]
    assert len(set(archs)) == len(archs), \
        f"search strategy {name!r} must record each architecture once, but recorded {len(archs)} candidates of " \
        f"{len(set(archs))} architectures"
    assert result.best in result.candidates, f"the best of search strategy {name!r} must be one of its candidates"
    assert evaluator.evaluations == len(result.candidates) == result.evaluations, \
        f"search strategy {name!r} must evaluate each candidate once, but evaluated {evaluator.evaluations} times " \
        f"for {len(result.candidates)} candidates (the search reports {result.evaluations})"
    again = search(name, problem, settings=settings, seed=seed, evaluator=evaluator)
    assert trace(again) == trace(result) and again.best == result.best, \
        f"search strategy {name!r} must give the same candidates for the same seed, but the second search " \
        f"recorded {len(again.candidates)} candidates, {sum(a != b for a, b in zip(trace(again), trace(result)))} " \
        f"of them different"
    assert again.evaluations == 0, f"search strategy {name!r} must take repeated architectures from the " \
                                   f"evaluator's cache, but evaluated {again.evaluations} again"
    return result


def check_constraint(name: str, problem: SearchProblem, *, settings: dict[str, Any] | None = None) -> None:
    """Under a latency target and a MACs bound, with a second table: feasibility and costs are the tables'."""
    space, table, phone = problem.space, problem.table, problem.phone_table
    rng = np.random.default_rng(0)
    macs = [table.predict(space.from_indices([int(rng.integers(n)) for n in space.num_ops])).macs for _ in range(300)]
    max_macs, target = float(np.percentile(macs, 60)), 0.95 * problem.median_ms
    result = search(name, problem, settings=settings, target_ms=target, tables=[table, phone], max_macs=max_macs)
    assert result.best is not None and result.best.feasible, \
        f"search strategy {name!r} must find a feasible best under {target:.4g} ms and {max_macs:.4g} MACs, but " \
        f"found {result.best}"
    for c in result.candidates:
        p = table.predict(c.arch)
        really = p.latency_ms <= target + 1e-9 and p.macs <= max_macs
        assert c.feasible == really, \
            f"candidate {c.arch} of search strategy {name!r} is marked feasible={c.feasible}, but runs " \
            f"{p.latency_ms:.4g} ms with {p.macs} MACs"
        costs = (np.isclose(c.latency_ms[0], p.latency_ms), c.macs == p.macs, c.params == p.params,
                 np.isclose(c.latency_ms[1], phone.predict(c.arch).latency_ms))
        assert all(costs), f"candidate {c.arch} of search strategy {name!r} must carry the tables' latencies, MACs " \
                           f"and parameters, but carries {c.latency_ms}, {c.macs}, {c.params}"
    best = max(c.accuracy for c in result.feasible)
    assert result.best.accuracy == best, \
        f"the best of search strategy {name!r} must be the most accurate feasible candidate ({best:.4g} %), but " \
        f"has {result.best.accuracy:.4g} %"


def check_unreachable_target(name: str, problem: SearchProblem, *, settings: dict[str, Any] | None = None) -> None:
    lowest = problem.table.minimum_latency()
    try:
        search(name, problem, settings=settings, target_ms=0.9 * lowest)
    except ConfigError as error:
        assert f"({lowest:.6g} ms" in str(error), \
            f"search strategy {name!r} must name the smallest latency {lowest:.6g} ms of an unreachable target, " \
            f"but said {str(error)!r}"
        return
    raise AssertionError(f"search strategy {name!r} must refuse a target below the fastest architecture "
                         f"({lowest:.6g} ms) with a ConfigError, but searched")


def check_settings(name: str, settings: dict[str, Any] | None = None) -> None:
    strategy = STRATEGIES.create(name, **(fast_settings(name) if settings is None else settings))
    assert json.loads(json.dumps(strategy.settings())) == strategy.settings(), \
        f"search strategy {name!r} must have JSON-serialisable settings, but has {strategy.settings()}"
    try:
        STRATEGIES.create(name, bogus=1)
    except ConfigError as error:
        assert "but got bogus" in str(error), \
            f"search strategy {name!r} must name the refused setting, but said {str(error)!r}"
        return
    raise AssertionError(f"search strategy {name!r} must refuse an unknown setting with a ConfigError, but took "
                         f"bogus=1")


class _Stop(Exception):
    pass


def check_resumable(name: str, problem: SearchProblem, output: str | Path, *, settings: dict[str, Any] | None = None,
                    whole: SearchResult | None = None, seed: int = 3, stop_at: int = 2) -> None:
    """Stopped at its ``stop_at``-th progress report with ``done >= 1`` (after its first step was saved: a
    generation, a chunk, a training epoch), a search resumed on ``output`` ends as ``whole`` (an
    uninterrupted search with the same seed; run here when not given), evaluating only what was not saved."""
    output = Path(output)
    whole = whole or search(name, problem, settings=settings, seed=seed)
    reports = []

    def stop(progress: Any) -> None:
        reports.append(progress)
        if sum(p.done >= 1 for p in reports) == stop_at:
            raise _Stop

    try:
        search(name, problem, settings=settings, seed=seed, output=output, on_progress=stop)
    except _Stop:
        pass
    else:
        raise AssertionError(f"search strategy {name!r} must report progress with done >= 1 at least {stop_at} "
                             f"times, but finished after {sum(p.done >= 1 for p in reports)}")
    state_path = output / "state.json"
    saved = len(json.loads(state_path.read_text())["evaluated"]) if state_path.exists() else 0
    if state_path.exists():  # a strategy that trains may be stopped before its first search step
        state = json.loads(state_path.read_text())
        assert not state["done"] and saved < len(whole.candidates), \
            f"a search of strategy {name!r} stopped early must save an unfinished state, but state.json says " \
            f"done={state['done']} with {saved} of {len(whole.candidates)} candidates"
    evaluator = SyntheticEvaluator(problem.space)
    resumed = search(name, problem, settings=settings, seed=seed, output=output, evaluator=evaluator)
    assert trace(resumed) == trace(whole), \
        f"a resumed search of strategy {name!r} must end as an uninterrupted one, but recorded " \
        f"{len(resumed.candidates)} candidates instead of {len(whole.candidates)}, or others"
    assert evaluator.evaluations == len(whole.candidates) - saved, \
        f"a resumed search of strategy {name!r} must evaluate only the {len(whole.candidates) - saved} candidates " \
        f"not saved, but evaluated {evaluator.evaluations}"
    assert json.loads(state_path.read_text())["done"], \
        f"a finished search of strategy {name!r} must mark its state done"
    written = sorted(load_search(output).candidates["arch"])
    assert written == sorted(str(c.arch) for c in whole.candidates), \
        f"the search directory of strategy {name!r} must list every candidate in candidates.csv, but lists " \
        f"{len(written)} of {len(whole.candidates)}"

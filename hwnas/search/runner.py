"""Running a search end to end: checks, the strategy, references, and the search directory.

Reference architectures of the space (``hwnas references``) are placed beside the candidates:

- a reference whose space, built at the search's input and width, is the search space itself is
  evaluated with the same evaluator and gets its latency on every table: it is a point on the chart;
- a reference of another shape (other channels or head) gets a latency from any table that happens
  to hold all its blocks and no accuracy, since the supernet has no weights for it: a tick on the
  latency axis; a table that lacks its blocks leaves its latency empty.

References never compete for the best candidate or the Pareto front: they are not what the search found.
"""

from __future__ import annotations

import math
import os
from contextlib import nullcontext
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from hwnas.errors import ConfigError, quoted
from hwnas.outputs import check_output_dir, dir_lock
from hwnas.progress import ProgressCallback, report
from hwnas.search.base import Candidate, SearchContext, SearchStrategy, ranked
from hwnas.search.constraints import Constraint, check_table, format_ms
from hwnas.search.results import SearchWriter, energy_column, latency_column, search_config, table_labels, write_sweep
from hwnas.space import REFERENCES, SearchSpace, arch_cost
from hwnas.supernet.evaluator import Evaluator
from hwnas.tables import LookupTable
from hwnas.training.config import RunConfig


@dataclass(frozen=True)
class Rescore:
    """The last step of a search driven by a cheap estimator (a predictor): its ``count`` best feasible
    candidates scored again by ``evaluator`` (the supernet, with more validation images); the best of those
    is returned (Once-for-All's recipe)."""

    evaluator: Evaluator
    count: int = 10

    def __post_init__(self) -> None:
        if not isinstance(self.count, int) or isinstance(self.count, bool) or self.count < 1:
            raise ConfigError(f"re-scoring takes an integer count >= 1, but got count={self.count!r}")

    def describe(self) -> dict:
        return {"count": self.count, "evaluator": self.evaluator.describe()}

    def apply(self, candidates: list[Candidate], on_progress: ProgressCallback | None = None) -> None:
        """Re-score the ``count`` best feasible ``candidates`` by their estimator (in place; candidates re-scored
        before, by another target of a sweep or a saved state, keep their score)."""
        feasible = sorted((i for i, c in enumerate(candidates) if c.feasible),
                          key=lambda i: (-candidates[i].accuracy, candidates[i].latency_ms[0], i))
        chosen = feasible[:self.count]
        for done, i in enumerate(chosen):
            if candidates[i].rescored is None:
                candidates[i] = replace(candidates[i], rescored=float(self.evaluator(candidates[i].arch)))
            report(on_progress, "re-scoring the best with the supernet", done + 1, len(chosen))


@dataclass
class SearchResult:
    """Every evaluated candidate (evaluation order), the best feasible one, and what else happened."""

    candidates: list[Candidate]
    best: Candidate | None
    labels: list[str]
    config: dict
    notes: list[str] = field(default_factory=list)
    references: list[dict] = field(default_factory=list)
    evaluations: int = 0  # accuracies computed in this run (the rest came from the cache or a saved state)
    path: Path | None = None

    @property
    def feasible(self) -> list[Candidate]:
        return [c for c in self.candidates if c.feasible]


def run_search(strategy: SearchStrategy, *, space: SearchSpace, tables: Sequence[LookupTable], target_ms: float,
               evaluator: Evaluator | None, max_macs: float | None = None, max_params: float | None = None,
               max_energy: float | None = None,
               seed: int = 0, output: str | Path | None = None, force: bool = False, references: bool = True,
               training: RunConfig | None = None, on_progress: ProgressCallback | None = None,
               extra_config: dict | None = None, rescore: Rescore | None = None) -> SearchResult:
    """Search ``space`` under ``target_ms`` on ``tables[0]`` (and the optional bounds); report every table.

    With ``output`` the search directory is written (see `hwnas.search.results`) and an interrupted
    search with the same configuration resumes from its saved state. ``training`` is the `RunConfig` a
    strategy that trains starts from (see `SearchContext`). With ``rescore`` the best candidates by ``evaluator`` are
    scored again (`Rescore`) and the best of them is returned. Under ``torchrun`` only rank 0 writes.
    """
    if not tables:
        raise ConfigError("a search needs at least one lookup table, but got none")
    if output is not None:
        output = check_output_dir(output, "a search directory", "search")
    constraint = Constraint(tables[0], target_ms, max_macs=max_macs, max_params=max_params, max_energy=max_energy,
                            space=space)
    for table in tables[1:]:
        check_table(table, space)
    constraint.check_reachable()
    if strategy.needs_evaluator and evaluator is None:
        raise ConfigError(f"strategy {strategy.name!r} ranks architectures by supernet accuracy and needs an "
                          f"evaluator (--supernet RUN_DIR)")
    labels = table_labels(tables)
    config = search_config(strategy=strategy, seed=seed, space=space, constraint=constraint, tables=tables,
                           labels=labels, evaluator=evaluator,
                           extra={**(extra_config or {}), **({"rescore": rescore.describe()} if rescore else {})})
    writer = SearchWriter(output) if output is not None and int(os.environ.get("RANK", "0")) == 0 else None
    with dir_lock(output, "search directory") if writer is not None else nullcontext():
        if writer is not None:
            saved = writer.prepare(config, force)
            if evaluator is not None:
                evaluator.preload(saved)
            if rescore is not None:
                rescore.evaluator.preload(writer.rescored)
        return _search(strategy, space, tables, target_ms, evaluator, constraint, labels, config, seed, output,
                       writer, references, training, on_progress, rescore)


def _search(strategy: SearchStrategy, space: SearchSpace, tables: Sequence[LookupTable], target_ms: float,
            evaluator: Evaluator | None, constraint: Constraint, labels: list[str], config: dict, seed: int,
            output: str | Path | None, writer: SearchWriter | None, references: bool, training: RunConfig | None,
            on_progress: ProgressCallback | None, rescore: Rescore | None) -> SearchResult:
    before = evaluator.evaluations if evaluator is not None else 0

    def checkpoint(context: SearchContext) -> None:
        assert writer is not None
        writer.checkpoint(context.candidates, labels, context.generation)

    context = SearchContext(space, constraint, evaluator, seed=seed, tables=tables, training=training,
                            work_dir=Path(output) if output is not None else None,
                            on_step=checkpoint if writer else None, on_progress=on_progress,
                            task=f"{strategy.name} search, target {format_ms(target_ms)}")
    strategy.run(context)
    if rescore is not None:
        rescore.apply(context.candidates, on_progress)
    refs = reference_rows(space, context, labels) if references else []
    best = next(iter(ranked(context.candidates)), None)
    if writer is not None:
        writer.finish(context.candidates, best, labels, config, refs, context.generation)
    return SearchResult(context.candidates, best, labels, config, context.notes, refs,
                        (evaluator.evaluations if evaluator is not None else 0) - before,
                        Path(output) if output is not None else None)


def sweep_name(target_ms: float) -> str:
    """The sub-directory of one target of a sweep: ``target_3ms``, ``target_0.5ms``."""
    return f"target_{format_ms(target_ms)}"


def run_sweep(strategy: SearchStrategy, *, targets_ms: Sequence[float], space: SearchSpace,
              tables: Sequence[LookupTable], output: str | Path | None = None, force: bool = False,
              **kwargs: Any) -> list[SearchResult]:
    """One search per target, sharing the evaluator (and its cache); with ``output``, one sub-directory
    per target (`sweep_name`) listed in ``output/sweep.json``. Every target is checked before any runs.

    Each target's search is its own (its seed, its state, its resumption), and then every candidate the
    sweep evaluated is considered for every target it satisfies (`share_candidates`): the best accuracy
    of a sweep never falls as the target loosens."""
    if not targets_ms:
        raise ConfigError("a sweep needs at least one target latency, but got none")
    if not tables:
        raise ConfigError("a search needs at least one lookup table, but got none")
    constraints = [Constraint(tables[0], target, max_macs=kwargs.get("max_macs"), max_params=kwargs.get("max_params"),
                              max_energy=kwargs.get("max_energy"),
                              space=space) for target in targets_ms]
    for constraint in constraints:
        constraint.check_reachable()
    names = [sweep_name(t) for t in targets_ms]
    if output is not None:
        output = check_output_dir(output, "a search directory", "search")
    main = output is not None and int(os.environ.get("RANK", "0")) == 0
    with dir_lock(output, "search directory") if main else nullcontext():
        if output is not None:
            write_sweep(Path(output), targets_ms, names, force)
        results = []
        for target, name in zip(targets_ms, names):
            results.append(run_search(strategy, space=space, tables=tables, target_ms=target, force=force,
                                      output=Path(output) / name if output is not None else None, **kwargs))
        share_candidates(results, constraints, kwargs.get("rescore"))
    return results


def share_candidates(results: Sequence[SearchResult], constraints: Sequence[Constraint],
                     rescore: Rescore | None = None) -> None:
    """Add to each result of a sweep the candidates other targets evaluated that satisfy its constraint
    (origin ``shared from target_...``), choose its best again, and rewrite its search directory.

    The searches of a sweep are separate runs of a strategy, each seeing a few hundred architectures, so
    without this a looser target's best could be worse than a tighter one's, only because its search
    happened not to draw that architecture. Every result here has the same tables, so a shared candidate
    keeps its latencies, MACs and parameters; only its constraint values are those of the target. With
    ``rescore`` every result's best are re-scored, and an architecture re-scored for any target carries that
    accuracy in every result that holds it (its own search may have found it too, without re-scoring it), so
    that the re-scored best never falls as the target loosens either.
    """
    for result, constraint in zip(results, constraints):
        seen = {str(c.arch) for c in result.candidates}
        for other in results:
            if other is result:
                continue
            source = other.path.name if other.path is not None else sweep_name(other.config["target_latency_ms"])
            fresh = [c for c in other.candidates if str(c.arch) not in seen and not c.origin.startswith("shared")]
            if not fresh:
                continue
            values = constraint.values_indices(np.array([constraint.space.indices(c.arch) for c in fresh]))
            for candidate, row in zip(fresh, values):
                if (row <= 0).all() and str(candidate.arch) not in seen:
                    result.candidates.append(replace(candidate, values=tuple(float(v) for v in row),
                                                     origin=f"shared from {source}"))
                    seen.add(str(candidate.arch))
    if rescore is not None:  # the best of the shared ones may not have been re-scored for their own target
        for result in results:
            rescore.apply(result.candidates)
    scored = {str(c.arch): c.rescored for r in results for c in r.candidates if c.rescored is not None}
    for result in results:
        result.candidates[:] = [replace(c, rescored=scored[str(c.arch)]) if c.rescored is None and str(c.arch)
                                in scored else c for c in result.candidates]
        result.best = next(iter(ranked(result.candidates)), None)
        if result.path is not None and int(os.environ.get("RANK", "0")) == 0:
            SearchWriter(result.path).finish(result.candidates, result.best, result.labels, result.config,
                                             result.references, max(c.generation for c in result.candidates))


def reference_rows(space: SearchSpace, context: SearchContext, labels: Sequence[str]) -> list[dict]:
    """One row per reference architecture of ``space``'s family (see the module docstring)."""
    rows = []
    width = space.config.get("width", 1.0)
    for name in REFERENCES:
        ref = REFERENCES.get(name)
        if ref.space != space.name:
            continue
        ref_space = ref.build_space(space.profile, width=width)
        in_space = ref_space.describe() == space.describe()
        arch = ref_space.validate(ref.arch)
        latencies = [reference_latency(table, ref_space, arch) for table in context.tables]
        accuracy = math.nan
        feasible: bool | None = None
        if in_space:
            feasible = context.constraint.feasible(arch)
            if context.evaluator is not None:
                accuracy = context.evaluator(arch)
        cost = arch_cost(ref_space, arch)
        row: dict[str, Any] = {"name": ref.name, "arch": str(arch), "in_space": in_space, "accuracy": accuracy}
        row.update({latency_column(label): ms for label, ms in zip(labels, latencies)})
        row.update({energy_column(label): reference_energy(table, ref_space, arch)
                    for label, table in zip(labels, context.tables) if table.has_energy})
        row.update({"macs": cost.macs, "params": cost.params, "feasible": feasible})
        rows.append(row)
    return rows


def reference_latency(table: LookupTable, space: SearchSpace, arch: Any) -> float:
    """``arch`` of ``space`` on ``table`` (calibrated when the table is), or NaN when the table lacks a block."""
    keys = [b.key for _, b in space.blocks(arch, table.header["batch"], table.header["dtype"])]
    if any(k not in table.records for k in keys):
        return math.nan
    raw = sum(table.records[k].latency_ms for k in keys)
    cal = table.calibration
    return float(cal.apply(raw) if cal else raw)


def reference_energy(table: LookupTable, space: SearchSpace, arch: Any) -> float:
    """``arch`` of ``space``'s energy (mJ) on ``table``, or NaN when the table lacks a block."""
    keys = [b.key for _, b in space.blocks(arch, table.header["batch"], table.header["dtype"])]
    if any(k not in table.records for k in keys):
        return math.nan
    return float(sum(table.records[k].extra["energy_mj"] for k in keys))


def parse_targets(text: str, table: LookupTable, space: SearchSpace) -> list[float]:
    """The latency targets of ``--target-latency``: durations (`parse_latencies`) or reference architectures'
    names, each standing for its latency on ``table`` (built in ``space``'s family at its input profile and
    width), in the order given, duplicates dropped."""
    from hwnas.search.constraints import parse_latency
    from hwnas.space import find_reference

    parts = text.split(",")
    if not text.strip() or any(not part.strip() for part in parts):
        raise ConfigError(f"target latencies are durations or reference names separated by commas such as "
                          f"2ms,3ms,FBNet-A, but got {quoted(text)}")
    targets = []
    for part in parts:
        ref = find_reference(part.strip())
        if ref is None:
            targets.append(parse_latency(part))
            continue
        if ref.space != space.name:
            raise ConfigError(f"a reference target must be an architecture of the searched space {space.name!r}, "
                              f"but {ref.name!r} belongs to space {ref.space!r}")
        ref_space = ref.build_space(space.profile, width=space.config.get("width", 1.0))
        ms = reference_latency(table, ref_space, ref_space.validate(ref.arch))
        if math.isnan(ms):
            raise ConfigError(f"a reference target needs the reference's latency on the table, but "
                              f"{table.path or table.device_name} lacks blocks of {ref.name!r} (other channels than "
                              f"the searched space); give its latency instead")
        targets.append(float(ms))
    return list(dict.fromkeys(targets))

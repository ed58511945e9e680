"""The search-strategy interface: the `SearchStrategy` base class, its registry, and the `SearchContext`
through which a strategy draws, scores and records architectures.

A strategy only proposes architectures. Everything shared (constraint checks, accuracy through the
evaluator and its cache, latency on every table, the record of every candidate, progress and
checkpoints) lives in the context, so that every strategy reports alike and a new one is a short class.
"""

from __future__ import annotations

import dataclasses
import random
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from hwnas.errors import ConfigError
from hwnas.progress import ProgressCallback, report
from hwnas.registry import Registry
from hwnas.search.constraints import Constraint, format_ms
from hwnas.space import Architecture, SearchSpace, as_architecture
from hwnas.supernet.evaluator import Evaluator
from hwnas.tables import LookupTable
from hwnas.training.config import RunConfig

#: draws per vectorised batch of rejection sampling; fixed, so that a seed gives the same draws everywhere
SAMPLE_BATCH = 1024


def ranked(candidates: Iterable[Candidate]) -> list[Candidate]:
    """The feasible ``candidates``, most accurate first: those re-scored by the supernet (by that accuracy)
    before the rest (by their estimator's); ties go to the faster (on the constraining table), then to the one
    evaluated earlier."""
    order = sorted(((i, c) for i, c in enumerate(candidates) if c.feasible),
                   key=lambda ic: (ic[1].rescored is None, -(ic[1].rescored if ic[1].rescored is not None
                                                              else ic[1].accuracy), ic[1].latency_ms[0], ic[0]))
    return [c for _, c in order]


@dataclass(frozen=True)
class Candidate:
    """One evaluated architecture.

    ``accuracy`` is the search's estimator's (``estimator``: ``supernet`` or ``predictor``); ``rescored`` the
    supernet's accuracy with more validation images, for the last candidates of a predictor-driven search
    (None for the others); ``latency_ms`` holds one prediction per table of the search, the constraining
    table first; ``values`` the constraint values (``Constraint.names`` order; > 0 means violated);
    ``origin`` how the strategy produced it (``random``, ``mutation``, ``crossover``, ...).
    """

    arch: Architecture
    accuracy: float
    latency_ms: tuple[float, ...]
    macs: int
    params: int
    values: tuple[float, ...]
    generation: int
    origin: str
    estimator: str = "supernet"
    rescored: float | None = None
    energy_mj: tuple[float | None, ...] = ()  # one per table, like latency_ms; None for a table without energy

    @property
    def feasible(self) -> bool:
        return all(v <= 0 for v in self.values)


class SearchContext:
    """What a strategy searches with: the space, the constraint, the evaluator, a seeded RNG, and the
    record of every evaluated candidate.

    ``tables`` are the tables whose latency is reported for every candidate; the constraint's table is
    always the first of them. ``training`` is the `RunConfig` a strategy that trains (the differentiable one)
    starts from (data, split, warm start, how the weights are trained), and ``work_dir`` the directory it may
    keep its training run in (None: a temporary one); random and evolution only need the evaluator. ``on_step(context)`` is
    called by `step` after each generation (the search runner saves its state there); ``on_progress``
    gets a `hwnas.progress.Progress` (task ``task``) after `begin`, after every recorded candidate and
    after every step.
    """

    def __init__(self, space: SearchSpace, constraint: Constraint, evaluator: Evaluator | None, *, seed: int = 0,
                 tables: Sequence[LookupTable] = (), training: RunConfig | None = None,
                 work_dir: Path | None = None, on_step: Callable[[SearchContext], None] | None = None,
                 on_progress: ProgressCallback | None = None, task: str = "search"):
        self.space, self.constraint, self.evaluator = space, constraint, evaluator
        self.seed = seed
        self.rng = random.Random(seed)
        others = [t for t in tables if t is not constraint.table]
        self.tables: list[LookupTable] = [constraint.table, *others]
        self.training, self.work_dir = training, work_dir
        self.on_step, self.on_progress, self.task = on_step, on_progress, task
        self.candidates: list[Candidate] = []
        #: what scores the candidates: the evaluator's kind (``supernet``, ``predictor``, ...)
        self.estimator = (evaluator.describe().get("kind") or "supernet") if evaluator is not None else "supernet"
        self._by_arch: dict[str, Candidate] = {}
        self.generation = 0
        self.rejected = 0
        self.notes: list[str] = []
        self._done, self._total, self._feasible = 0, 0, 0
        self._best: Candidate | None = None

    # ----- what has been seen ---------------------------------------------------------------------------
    def is_evaluated(self, arch: Architecture | str) -> bool:
        return str(arch) in self._by_arch

    def best(self) -> Candidate | None:
        """The feasible candidate of highest accuracy; ties go to the faster, then the earlier one."""
        return self._best

    def top(self, k: int) -> list[Candidate]:
        """The ``k`` feasible candidates of highest accuracy (same tie-breaking as `best`)."""
        return ranked(self.candidates)[:k]

    # ----- drawing --------------------------------------------------------------------------------------
    def sample_feasible(self, n: int, *, patience: int, exclude: Iterable[str] = ()) -> list[Architecture]:
        """Up to ``n`` distinct feasible architectures drawn uniformly from the space (rejection sampling).

        Drawing stops early, with fewer, once ``patience`` draws in a row gave nothing new; rejections
        are counted in ``rejected``. Draws come in vectorised batches seeded from ``rng``.
        """
        if n < 1:
            return []
        skip = set(exclude) | set(self._by_arch)
        found: list[Architecture] = []
        generator = np.random.default_rng(self.rng.getrandbits(64))
        since_last = 0  # draws in a row that gave nothing new
        while len(found) < n and since_last < patience:
            draws = np.stack([generator.integers(0, k, SAMPLE_BATCH) for k in self.space.num_ops], axis=1)
            previous = -1
            # only feasible rows need Python; the infeasible ones between them are counted in bulk
            for position in np.flatnonzero(self.constraint.feasible_indices(draws)):
                gap = int(position) - previous - 1
                if since_last + gap >= patience:
                    break
                since_last += gap
                self.rejected += gap
                previous = int(position)
                arch = self.space.from_indices(draws[position].tolist())
                if str(arch) in skip:
                    since_last += 1
                    self.rejected += 1
                    continue
                skip.add(str(arch))
                found.append(arch)
                since_last = 0
                if len(found) == n:
                    break
            if len(found) == n:
                break
            # the rows after the last one looked at were rejected too (or patience ran out among them)
            tail = min(SAMPLE_BATCH - 1 - previous, patience - since_last)
            since_last += tail
            self.rejected += tail
        return found

    def infeasible_message(self, draws: int) -> str:
        """Why rejection sampling found nothing: the target against what the space reaches."""
        fastest = self.constraint.minimum()["latency_ms"]
        return (f"no architecture met the constraint in {draws} random draws (target "
                f"{format_ms(self.constraint.target_ms)}; the fastest architecture of the space runs "
                f"{fastest:.4g} ms on {self.constraint.table.device_name}); raise the target or the patience")

    # ----- scoring and recording ------------------------------------------------------------------------
    def evaluate(self, archs: Iterable[Architecture | str | Sequence[str]], origin: str) -> list[Candidate]:
        """Score ``archs`` with the evaluator and record them in the current generation.

        An architecture recorded before is not recorded again; its first record is returned.
        """
        if self.evaluator is None:
            raise ConfigError("this search has no evaluator to score architectures with (pass a supernet)")
        archs = [self.space.validate(as_architecture(arch)) for arch in archs]
        return self.record_many(archs, self.evaluator.many(archs), origin)

    def record(self, arch: Architecture | str | Sequence[str], accuracy: float, origin: str) -> Candidate:
        """Record an architecture scored by the strategy itself (e.g. on a supernet it trained)."""
        return self.record_many([self.space.validate(as_architecture(arch))], [accuracy], origin)[0]

    def record_many(self, archs: Sequence[Architecture], accuracies: Sequence[float], origin: str) -> list[Candidate]:
        """Record valid architectures with their accuracies, costs computed for all at once (a predictor-driven
        search records thousands a second); one recorded before keeps (and returns) its first record."""
        new = [i for i, arch in enumerate(archs) if str(arch) not in self._by_arch]
        if new:
            indices = np.array([self.space.indices(archs[i]) for i in new])
            costs = self.constraint.costs_indices(indices)
            values = self.constraint.values_indices(indices)
            others = [t.predict_indices(indices) for t in self.tables[1:]]
            energies = [t.energy_indices(indices) if t.has_energy else None
                        for t in (self.tables or [self.constraint.table])]
            for row, i in enumerate(new):
                if str(archs[i]) in self._by_arch:  # listed twice in this call
                    continue
                latency, macs, params = costs[row]
                candidate = Candidate(archs[i], float(accuracies[i]),
                                      (float(latency), *(float(o[row]) for o in others)), int(macs), int(params),
                                      tuple(float(v) for v in values[row]), self.generation, origin, self.estimator,
                                      energy_mj=tuple(None if e is None else float(e[row]) for e in energies))
                self.candidates.append(candidate)
                self._by_arch[str(archs[i])] = candidate
                self._feasible += candidate.feasible
                if candidate.feasible and (self._best is None or (-candidate.accuracy, candidate.latency_ms[0])
                                           < (-self._best.accuracy, self._best.latency_ms[0])):
                    self._best = candidate
            self._report()  # live counts between steps
        return [self._by_arch[str(arch)] for arch in archs]

    def begin(self, total: int) -> None:
        """Announce the number of steps (generations, chunks) the strategy will take, for progress bars."""
        self._done, self._total = 0, total
        self._report()

    def step(self, done: int, total: int) -> None:
        """Mark a step (a generation, a chunk of samples) as finished: checkpoint, then report progress."""
        self._done, self._total = done, total
        if self.on_step:
            self.on_step(self)
        self._report()

    def status(self) -> str:
        """What a progress line says about the search so far."""
        best = self.best()
        shown = f"{best.accuracy:.2f} %" if best is not None else "-"
        return (f"gen {self.generation}  best {shown}  feasible {self._feasible}/{len(self.candidates)}  "
                f"rejected {self.rejected}")

    def _report(self) -> None:
        if self._total:
            report(self.on_progress, self.task, self._done, self._total, self.status())


class SearchStrategy(ABC):
    """Base class of the search strategies; subclasses are keyword-only dataclasses of their settings.

    Contract, checked for every registered strategy by `hwnas.testing.search`:

    - ``run(context)`` proposes architectures of ``context.space`` and has them scored and recorded
      through ``context.evaluate`` (or ``context.record`` when the strategy scores them itself).
    - Every candidate a strategy means as a result must satisfy ``context.constraint``; random and
      evolution submit feasible architectures only. The best result is chosen by the context
      (`SearchContext.best`: the most accurate feasible candidate), never by the strategy.
    - All randomness comes from ``context.rng`` (a ``random.Random`` seeded with the search seed) or
      generators seeded from it, never from a global RNG, and nothing depends on time or on how long
      an evaluation took, so the same seed gives the same candidates in the same order.
    - Resuming relies on that determinism: a resumed search runs the strategy again from the start
      with the evaluator's cache filled from the saved candidates, so the strategy keeps no state of
      its own beyond a run. It calls ``context.begin(total)`` first and ``context.step(done, total)``
      after each of the ``total`` generations or chunks, which is when the search state is saved.
    - ``run`` may stop early (a bounded rejection sampler ran out of patience); it says why by
      appending a sentence to ``context.notes``. It raises `hwnas.errors.HwnasError` only when it could
      not produce a single feasible candidate.
    - Settings are validated in ``__post_init__`` with errors that state the rule and the value, and
      `settings` (the dataclass fields) must be JSON-serialisable: they are written to config.json.
    """

    name: ClassVar[str]
    #: whether the strategy scores through ``context.evaluator`` (a trained supernet is needed)
    needs_evaluator: ClassVar[bool] = True

    @abstractmethod
    def run(self, context: SearchContext) -> None:
        """Search, recording every evaluated candidate in ``context``."""

    def settings(self) -> dict[str, Any]:
        return dataclasses.asdict(self)  # type: ignore[call-overload]


STRATEGIES: Registry[type[SearchStrategy]] = Registry("search strategy")


def register_strategy(name: str) -> Callable[[type[SearchStrategy]], type[SearchStrategy]]:
    """Class decorator: ``@register_strategy("evolution")`` registers the class and sets its ``name``."""

    def decorator(cls: type[SearchStrategy]) -> type[SearchStrategy]:
        cls.name = name
        STRATEGIES.add(name, cls)
        return cls

    return decorator


def check_ints(settings: Any, **minimums: int) -> None:
    """Validate integer settings of a strategy dataclass against their ``{name: minimum}``."""
    for name, minimum in minimums.items():
        value = getattr(settings, name)
        if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
            raise ConfigError(f"{name} must be an integer >= {minimum}, but got {name}={value!r}")

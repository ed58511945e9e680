"""Differentiable search: the ``differentiable`` training strategy (`hwnas.training.differentiable`: supernet
weights and architecture parameters α trained jointly under the table's hardware loss) run as a search.

The search trains a supernet run of its own, in ``SEARCH_DIR/supernet`` (a temporary directory without a
search directory): fresh on a dataset, or warm-started from a trained supernet whose data and validation
split it then keeps. That run is an ordinary training run (checkpoints with α, resumption after a kill,
torchrun DDP, log.csv and TensorBoard logs), so running the same search command again resumes it. The result
is the argmax of α in every layer, moved greedily to faster ops if it misses the constraint, scored like
every other strategy's candidates: by the search's evaluator when it has one, else by the evaluator of the
run it trained (inherited weights, BN recalibrated, the run's own validation split).
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from hwnas.errors import ConfigError
from hwnas.search.base import SearchContext, SearchStrategy, check_ints, register_strategy
from hwnas.search.constraints import format_ms
from hwnas.search.results import TRAINING_RUN
from hwnas.training import RunConfig, open_evaluator, train
from hwnas.training.differentiable import ArchitectureSettings, target_settings

#: the sub-directory of a search directory that holds the differentiable search's training run
RUN_DIR = TRAINING_RUN


@register_strategy("differentiable")
@dataclass(frozen=True, kw_only=True)
class DifferentiableSearch(ArchitectureSettings, SearchStrategy):
    """Joint training of supernet weights and α (needs training data, not an evaluator); the α settings
    are `ArchitectureSettings`'. How the weights are trained (batch size, learning rate, steps per epoch, ...)
    is the context's training `RunConfig` (``run_search(training=...)``), with `RunConfig`'s defaults: one set of
    training settings for every run hwnas trains.

    Attributes:
        epochs: epochs of joint training (after ``warmup_epochs`` of weights only).
    """

    epochs: int = 10

    needs_evaluator = False

    def __post_init__(self) -> None:
        super().__post_init__()
        check_ints(self, epochs=1)

    def run_config(self, context: SearchContext) -> RunConfig:
        """The training run of this search: the context's training settings and data, this strategy's settings
        and target, the context's seed."""
        if context.training is None:
            raise ConfigError("differentiable search trains a supernet and needs its data and training settings "
                              "(--dataset; --supernet RUN_DIR warm-starts it)")
        return replace(context.training, space=context.space.name, strategy="differentiable", arch=None,
                       strategy_settings=target_settings(context.constraint.table, context.constraint.target_ms, self),
                       epochs=self.warmup_epochs + self.epochs, eval_paths=0, seed=context.seed)

    def run(self, context: SearchContext) -> None:
        config = self.run_config(context)
        context.begin(1)
        with tempfile.TemporaryDirectory(prefix="hwnas-dnas-") as scratch:
            run_dir = context.work_dir / RUN_DIR if context.work_dir is not None else Path(scratch)
            result = train(config, run_dir, on_progress=context.on_progress)
            if result.rank != 0:
                return  # rank 0 records the result; the others only helped train
            self._record(context, result.strategy, run_dir, config)
        context.step(1, 1)

    def _record(self, context: SearchContext, strategy, run_dir: Path, config: RunConfig) -> None:
        table, target = context.constraint.table, context.constraint.target_ms
        with torch.no_grad():
            expected = float(strategy.expected_ms())
        indices = strategy.argmax()
        argmax_ms = float(context.constraint.costs_indices(np.array([indices]))[0, 0])
        indices, swaps = project_to_feasible(context, indices, strategy.log_probs())
        arch = context.space.from_indices(indices)
        evaluator = context.evaluator or open_evaluator(run_dir, bn_batches=config.bn_batches,
                                                        data_root=config.data_root, workers=config.workers,
                                                        device=config.device)
        candidate = context.record(arch, evaluator(arch), "argmax" if not swaps else "argmax+projection")
        context.notes.append(
            f"differentiable search ended at E[latency] {expected:.4g} ms; the argmax architecture runs "
            f"{argmax_ms:.4g} ms on {table.device_name} (target {format_ms(target)})"
            + (f"; {swaps} layer(s) were moved to faster ops to meet the constraint, giving "
               f"{candidate.latency_ms[0]:.4g} ms" if swaps else ""))


def project_to_feasible(context: SearchContext, indices: list[int],
                        log_probs: list[torch.Tensor]) -> tuple[list[int], int]:
    """Greedily move layers to faster ops until the architecture meets the constraint.

    Each move is the one that loses the least log-probability per millisecond saved, so the result stays
    as close to what α learned as the constraint allows. Returns the indices and the number of moves.
    """
    constraint = context.constraint
    indices, moves = list(indices), 0
    while not constraint.feasible_indices(np.array([indices]))[0]:
        base = constraint.costs_indices(np.array([indices]))[0, 0]
        best = None
        for layer, lp in enumerate(log_probs):
            for op in range(len(lp)):
                trial = indices.copy()
                trial[layer] = op
                saved = base - constraint.costs_indices(np.array([trial]))[0, 0]
                if saved <= 0:
                    continue
                cost = float(lp[indices[layer]] - lp[op]) / saved
                if best is None or cost < best[0]:
                    best = (cost, layer, op)
        if best is None:
            raise ConfigError(context.infeasible_message(0))
        indices[best[1]] = best[2]
        moves += 1
    return indices, moves

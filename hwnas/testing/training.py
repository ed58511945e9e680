"""Conformance suite of training strategies (`hwnas.training.STRATEGIES`): the `hwnas.training.Strategy` contract.

`check_training_strategy(name, work_dir)` trains a tiny supernet (`TINY_RUN`: spos at width 0.25 on 8x8
synthetic images) and checks:

- ``check_settings`` refuses a setting the strategy does not take (with `hwnas.errors.ConfigError`);
- every ``step`` (in each epoch, after ``begin_epoch``) updates the weights and returns a `StepResult` whose
  ``seen`` counts the batch once per pass of the model over it (one per path), with a finite loss sum and
  ``0 <= correct <= seen``; after the steps, ``metrics()`` reports exactly ``metric_names`` as finite numbers
  and ``validate`` a percentage or None;
- the model calls of step ``s`` (architectures, op weights, which images) depend on the strategy's state and
  ``s`` alone: reseeding torch's, Python's and numpy's global RNGs changes nothing (`Strategy.path_rng`);
- ``state_dict()`` holds tensors and plain values only, survives ``torch.save`` / ``torch.load(weights_only=True)``,
  and ``load_state_dict`` of it into a fresh strategy gives the same state back; a state with an unknown
  entry is refused with `hwnas.errors.CheckpointError`;
- `hwnas.training.train` interrupted after its first epoch and run again on the same directory resumes there
  and ends with exactly the weights and strategy state of an uninterrupted run.

A new strategy: register it in ``STRATEGIES`` and call ``check_training_strategy("mine", work_dir)``; one
that needs ``strategy_settings`` gets them from an entry in `SETTINGS` (a function of the run's settings
and a work directory) or as ``settings=``.
"""

from __future__ import annotations

import io
import math
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from hwnas.data import build_loaders
from hwnas.errors import CheckpointError, ConfigError
from hwnas.space import get_space
from hwnas.supernet import SuperNet, calibration_batches
from hwnas.testing.standins import synthetic_table
from hwnas.training import STRATEGIES, RunConfig, Strategy, train
from hwnas.training.loop import build_space, build_strategy
from hwnas.training.optim import OPTIMIZERS
from hwnas.training.strategies import StepResult

#: a supernet run that trains in about a second on one CPU thread; two epochs of two steps
TINY_RUN: dict[str, Any] = dict(space="spos", dataset="synthetic", width=0.25, resolution=8, synthetic_size=48,
                                batch_size=8, epochs=2, steps_per_epoch=2, eval_paths=1, bn_batches=1,
                                label_smoothing=0.0, seed=0)


def differentiable_settings(run: dict[str, Any], work_dir: Path) -> dict[str, Any]:
    """A synthetic table file of the run's space and a target 20 % above its fastest architecture; α moves
    from the first epoch on, so that a resumed run depends on the α its checkpoint saved."""
    from hwnas.training.differentiable import ArchitectureSettings, target_settings

    space = get_space(run["space"], run.get("synthetic_like", "cifar10"), width=run.get("width", 1.0),
                      resolution=run.get("resolution"))
    Path(work_dir).mkdir(parents=True, exist_ok=True)
    table = synthetic_table(space, path=Path(work_dir) / f"{space.name}-table.jsonl")
    return target_settings(table, 1.2 * table.minimum_latency(), ArchitectureSettings(warmup_epochs=0))


#: ``strategy_settings`` of the strategies that cannot train without some, by registry name
SETTINGS: dict[str, Callable[[dict[str, Any], Path], dict[str, Any]]] = {"differentiable": differentiable_settings}


def tiny_config(name: str, work_dir: str | Path, settings: dict[str, Any] | None = None, **changes: Any) -> RunConfig:
    """`TINY_RUN` trained by strategy ``name`` with ``settings`` (default: from `SETTINGS`, else none)."""
    run = {**TINY_RUN, **changes}
    if settings is None:
        settings = SETTINGS[name](run, Path(work_dir)) if name in SETTINGS else {}
    return RunConfig(strategy=name, strategy_settings=settings, **run)


def check_training_strategy(name: str, work_dir: str | Path, *, settings: dict[str, Any] | None = None) -> None:
    """Every check of this module for training strategy ``name``; ``work_dir`` receives the tiny runs."""
    work_dir = Path(work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    config = tiny_config(name, work_dir, settings)
    with torch.random.fork_rng(devices=[]):
        check_unknown_setting_refused(config)
        strategy = check_steps(config)
        check_paths(config)
        check_state_round_trip(config, strategy)
        check_resume(config, work_dir)


def _plain(value: Any) -> Any:
    """``value`` with tensors as lists, for comparing what a model was called with."""
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().tolist()
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value if isinstance(value, int | float | bool | type(None)) else str(value)


class _Setup:
    """What `train` builds before its first step (loaders, space, the seeded supernet, optimizer, strategy) and
    one training batch; ``calls`` records every call of the supernet: (on the training batch?, what it got)."""

    def __init__(self, config: RunConfig):
        self.config = config
        self.loaders = build_loaders(config.dataset, **config.loader_options())
        self.space, _ = build_space(config, self.loaders.profile)
        torch.manual_seed(config.seed)
        self.model = SuperNet(self.space, config.weight_sharing).train()
        self.optimizer = OPTIMIZERS.get(config.optimizer)(self.model.parameters(), config)
        self.strategy = build_strategy(config, self.space, self.loaders)
        self.criterion = nn.CrossEntropyLoss(label_smoothing=config.label_smoothing)
        torch.manual_seed(config.seed)
        self.images, self.labels = next(iter(self.loaders.train))
        self.calls: list[tuple[bool, Any]] = []
        self.model.register_forward_pre_hook(self._record, with_kwargs=True)

    def _record(self, module: nn.Module, args: tuple, kwargs: dict) -> None:
        x = args[0]
        on_batch = x.shape == self.images.shape and torch.equal(x.detach().cpu(), self.images)
        given = _plain(x.double().sum()), _plain(args[1:]), sorted(_plain(list(kwargs.items())))
        self.calls.append((on_batch, given))

    def step(self, step: int) -> StepResult:
        return self.strategy.step(self.model, self.images, self.labels, criterion=self.criterion,
                                  optimizer=self.optimizer, step=step)


def check_unknown_setting_refused(config: RunConfig) -> None:
    cls = STRATEGIES.get(config.strategy)
    try:
        cls.check_settings({**config.strategy_settings, "bogus_setting": 1})
    except ConfigError as error:
        assert "bogus_setting" in str(error), \
            f"training strategy {config.strategy!r} must name the refused setting, but said {str(error)!r}"
        return
    raise AssertionError(f"training strategy {config.strategy!r} must refuse an unknown setting with a ConfigError, "
                         f"but accepted bogus_setting=1")


def check_steps(config: RunConfig) -> Strategy:
    """One step per epoch: each updates the weights and reports what it trained. Returns the strategy."""
    setup = _Setup(config)
    name, batch = config.strategy, len(setup.labels)
    for epoch in range(config.epochs):
        setup.strategy.begin_epoch(epoch)
        before = {k: v.detach().clone() for k, v in setup.model.named_parameters()}
        setup.calls.clear()
        result = setup.step(epoch)
        assert isinstance(result, StepResult), \
            f"training strategy {name!r} must return a StepResult from step, but returned {type(result).__name__}"
        passes = sum(on_batch for on_batch, _ in setup.calls)
        assert passes >= 1 and result.seen == passes * batch, \
            f"training strategy {name!r} must report as seen the (sample, path) pairs it trained on, {passes} " \
            f"pass(es) of the model over the batch of {batch}, but reported seen={result.seen}"
        loss, correct = float(result.loss_sum), float(result.correct)
        assert math.isfinite(loss) and 0 <= correct <= result.seen, \
            f"training strategy {name!r} must report a finite loss sum and 0 <= correct <= seen={result.seen}, " \
            f"but reported loss_sum={loss}, correct={correct}"
        changed = [k for k, v in setup.model.named_parameters() if not torch.equal(v.detach(), before[k])]
        assert changed, f"step {epoch} of training strategy {name!r} (epoch {epoch}) must update the weights, " \
                        f"but changed none"
    metrics = setup.strategy.metrics()
    assert set(metrics) == set(setup.strategy.metric_names) and all(
        isinstance(v, float | int) and math.isfinite(v) for v in metrics.values()), \
        f"training strategy {name!r} must report its metric_names {setup.strategy.metric_names} as finite " \
        f"numbers, but reported {metrics}"
    calibration = calibration_batches(setup.loaders.train, 1) if setup.strategy.needs_calibration else []
    accuracy = setup.strategy.validate(setup.model, setup.loaders.val, calibration)
    assert accuracy is None or 0 <= accuracy <= 100, \
        f"training strategy {name!r} must validate to a percentage or None, but gave {accuracy!r}"
    return setup.strategy


def _model_calls(config: RunConfig, step: int, global_seed: int) -> list[Any]:
    """What the model was called with during ``step`` (in the run's last epoch), the global RNGs seeded with
    ``global_seed`` just before (and restored afterwards)."""
    python_state, numpy_state = random.getstate(), np.random.get_state()
    try:
        with torch.random.fork_rng(devices=[]):
            setup = _Setup(config)
            setup.strategy.begin_epoch(config.epochs - 1)
            torch.manual_seed(global_seed)
            random.seed(global_seed)
            np.random.seed(global_seed)
            setup.step(step)
    finally:
        random.setstate(python_state)
        np.random.set_state(numpy_state)
    return [call for _, call in setup.calls]


def check_paths(config: RunConfig, steps: tuple[int, ...] = (5,)) -> None:
    """The model calls of a step do not depend on the global RNGs (`Strategy.path_rng` is the only source)."""
    for step in steps:
        first, second = _model_calls(config, step, 1), _model_calls(config, step, 2)
        assert first, f"step {step} of training strategy {config.strategy!r} must call the model, but did not"
        assert first == second, \
            f"the paths of training strategy {config.strategy!r} must depend on (seed, step) alone, but step {step} " \
            f"called the model differently after the global RNGs were reseeded ({len(first)} and {len(second)} calls)"


def _check_plain(value: Any, where: str, name: str) -> None:
    if isinstance(value, dict):
        for k, v in value.items():
            assert isinstance(k, str | int), f"the state of training strategy {name!r} must have str or int keys, " \
                                             f"but {where} has key {k!r}"
            _check_plain(v, f"{where}[{k!r}]", name)
    elif isinstance(value, list | tuple):
        for i, v in enumerate(value):
            _check_plain(v, f"{where}[{i}]", name)
    else:
        assert isinstance(value, torch.Tensor | str | int | float | bool | type(None)), \
            f"the state of training strategy {name!r} must hold tensors and plain values only, but {where} is a " \
            f"{type(value).__name__}"


def same_state(a: Any, b: Any) -> bool:
    """Whether two states (nested dicts / lists of tensors and plain values) are equal, tensors exactly."""
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        return isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b)
    if isinstance(a, dict) and isinstance(b, dict):
        return set(a) == set(b) and all(same_state(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(same_state(x, y) for x, y in zip(a, b))
    return a == b


def check_state_round_trip(config: RunConfig, strategy: Strategy) -> None:
    """``strategy`` (trained by a few steps) saves a plain state that a fresh strategy loads."""
    name = config.strategy
    state = strategy.state_dict()
    _check_plain(state, "state_dict()", name)
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    loaded = torch.load(buffer, weights_only=True)
    fresh = _Setup(config).strategy
    fresh.load_state_dict(loaded)
    assert same_state(fresh.state_dict(), state), \
        f"training strategy {name!r} must give back the state it loaded, but a fresh one loaded with a trained " \
        f"state reports another"
    try:
        _Setup(config).strategy.load_state_dict({**state, "bogus_entry": 1})
    except CheckpointError:
        return
    raise AssertionError(f"training strategy {name!r} must refuse a state with an unknown entry with a "
                         f"CheckpointError, but loaded it")


class _Stop(Exception):
    pass


def _stop_after_first_epoch(stats: Any) -> None:
    if stats.epoch == 1:
        raise _Stop


def check_resume(config: RunConfig, work_dir: Path) -> None:
    """A run stopped after its first epoch's checkpoint and resumed ends exactly as an uninterrupted one."""
    name = config.strategy
    whole_dir, resumed_dir = work_dir / f"{name}-whole", work_dir / f"{name}-resumed"
    whole = train(config, whole_dir)
    try:
        train(config, resumed_dir, on_epoch=_stop_after_first_epoch)
    except _Stop:
        pass
    resumed = train(config, resumed_dir)
    assert resumed.start_epoch == 1 and [s.epoch for s in resumed.history] == list(range(2, config.epochs + 1)), \
        f"a run of training strategy {name!r} stopped after epoch 1 must resume there, but started after epoch " \
        f"{resumed.start_epoch} and trained epochs {[s.epoch for s in resumed.history]}"
    ended = resumed.model.state_dict()
    diverged = [k for k, v in whole.model.state_dict().items() if not torch.equal(v, ended[k])]
    assert not diverged, f"a resumed run of training strategy {name!r} must end with the weights of an " \
                         f"uninterrupted one, but {len(diverged)} tensors differ, e.g. {diverged[:3]}"
    assert same_state(whole.strategy.state_dict(), resumed.strategy.state_dict()), \
        f"a resumed run of training strategy {name!r} must end with the strategy state of an uninterrupted one"
    last, again = whole.history[-1], resumed.history[-1]
    assert (last.train_loss, last.val_acc) == (again.train_loss, again.val_acc), \
        f"the last epoch of a resumed run of training strategy {name!r} must repeat the uninterrupted one, but " \
        f"(train_loss, val_acc) = {(again.train_loss, again.val_acc)} instead of {(last.train_loss, last.val_acc)}"

"""The one training loop: a supernet (uniform, strict fairness, differentiable) or one architecture from
scratch, with checkpoints, resumption, logs, progress and DistributedDataParallel.

`train(config, run_dir)` is the whole loop: data, model, optimizer, learning-rate schedule, label
smoothing, progress updates, logs, checkpoints, resumption and DistributedDataParallel. Launched by
``torchrun --nproc_per_node N``, every rank trains its shard of the data, all ranks train the same
path at each step, and only rank 0 writes. The run directory's files are described in
`hwnas.training.run_dir`.

Running `train` again on the same directory resumes from the last checkpoint. Every epoch reseeds
torch's RNG and the data order from (seed, epoch, rank), and the path of every step is drawn from
(seed, step), so a resumed run repeats exactly what the interrupted one would have done; no RNG state
needs saving.
"""

from __future__ import annotations

import json
import logging
import os
import time
from contextlib import nullcontext
from dataclasses import dataclass, replace
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler

from hwnas.data import Loaders, build_loaders
from hwnas.errors import CheckpointError, require
from hwnas.outputs import check_output_dir, dir_lock
from hwnas.progress import ProgressCallback, report
from hwnas.space import Architecture, InputProfile, SearchSpace, get_space, resolve_arch
from hwnas.supernet.evaluate import accuracy, calibration_batches
from hwnas.supernet.supernet import SuperNet
from hwnas.training.config import RunConfig
from hwnas.training.distributed import Ranks, process_group, seed_epoch
from hwnas.training.optim import OPTIMIZERS, SCHEDULERS
from hwnas.training.run_dir import (CHECKPOINT_FILE, LOG_FILE, EpochStats, append_log, check_resumable,
                                    log_columns, one_line, read_run, truncate_log, write_checkpoint, write_config)
from hwnas.training.strategies import STRATEGIES, StandaloneTraining, Strategy

log = logging.getLogger(__name__)

#: steps between progress updates and the per-step TensorBoard loss (each costs a device sync)
REFRESH_STEPS = 10


@dataclass
class TrainResult:
    """``model`` is the trained SuperNet or standalone network (never DDP-wrapped); ``strategy`` the strategy
    that trained it (a differentiable run's architecture parameters are its state); ``history`` holds the
    epochs trained by this call, after ``start_epoch`` epochs that a checkpoint already held; ``test_acc``
    is the test-split accuracy (%) of a retrained architecture (None for supernets and on ranks other
    than 0, which neither validate nor write)."""

    model: nn.Module
    space: SearchSpace
    arch: Architecture | None
    strategy: Strategy
    start_epoch: int
    history: list[EpochStats]
    test_acc: float | None
    rank: int


def build_space(config: RunConfig, profile: InputProfile) -> tuple[SearchSpace, Architecture | None]:
    """The space fitted to the data's input profile, and the architecture to retrain (None for supernets).

    A reference architecture (``arch="FBNet-A"``) brings the channel settings it was published with.
    """
    if config.arch is None:
        return get_space(config.space, profile, width=config.width), None
    return resolve_arch(config.space, config.arch, profile, width=config.width)


def build_strategy(config: RunConfig, space: SearchSpace, loaders: Loaders) -> Strategy:
    if config.arch is not None:
        return StandaloneTraining(space, config, loaders)
    return STRATEGIES.create(config.strategy, space, config, loaders)


def train(config: RunConfig, run_dir: str | os.PathLike, *, on_progress: ProgressCallback | None = None,
          on_epoch=None, alone: bool = False) -> TrainResult:
    """Train (or resume) the run ``config`` describes in ``run_dir``; see the module docstring.

    Bad settings, unusable data and a run directory that holds another run raise HwnasError subclasses
    before anything is written; a run directory another process is writing is refused, naming it. ``on_progress`` receives a `hwnas.progress.Progress` every few steps
    (rank 0 only); ``on_epoch(EpochStats)`` is called on rank 0 after each epoch's checkpoint is written.
    ``alone`` trains in this process only, even inside a torchrun job (see `process_group`).
    """
    run_dir = check_output_dir(run_dir, "a run directory", "run")
    with process_group(config.device, alone=alone) as ranks:
        loaders = build_loaders(config.dataset, distributed=ranks.world_size > 1, **config.loader_options())
        # the run records the data it really trains on (a data set may fall back to another, as fashion-mnist
        # to its embedded subset) and the architecture it retrains, so that it is evaluated on the same
        config = replace(config, dataset=loaders.dataset)
        space, arch = build_space(config, loaders.profile)
        if arch is not None:
            config = replace(config, arch=str(arch))
        stored = read_run(run_dir)
        if stored is not None:
            check_resumable(run_dir, stored, config, space)
        checkpoint = stored.checkpoint if stored is not None else None
        initial = _initial_weights(config, space) if checkpoint is None and config.init_from else None

        torch.manual_seed(config.seed)  # the same initial weights on every rank and every attempt
        model: nn.Module = SuperNet(space, config.weight_sharing) if arch is None else space.build(arch)
        if initial is not None:
            model.load_state_dict(initial)
        # channels_last: depthwise convolutions train 1.6x faster in it on CPUs (and no slower on GPUs)
        model = model.to(ranks.device, memory_format=torch.channels_last)
        steps = config.steps_per_epoch or len(loaders.train)
        optimizer = OPTIMIZERS.get(config.optimizer)(model.parameters(), config)
        scheduler = SCHEDULERS.get(config.scheduler)(optimizer, config, steps)
        strategy = build_strategy(config, space, loaders)
        start_epoch, global_step = 0, 0
        if checkpoint is not None:
            try:
                model.load_state_dict(checkpoint["model"])
                optimizer.load_state_dict(checkpoint["optimizer"])
                scheduler.load_state_dict(checkpoint["scheduler"])
                strategy.load_state_dict(checkpoint["strategy"])
            except (RuntimeError, ValueError, KeyError, TypeError) as exc:
                raise CheckpointError(f"checkpoint {run_dir / CHECKPOINT_FILE} does not fit this run "
                                      f"({one_line(exc)}); delete it to start the run over") from None
            start_epoch, global_step = checkpoint["epoch"], checkpoint["global_step"]

        training = _Training(config, run_dir, ranks, loaders, space, arch, model, optimizer, scheduler, strategy,
                             steps, on_progress, on_epoch)
        # one writer per run directory (rank 0 writes); taken once every setting and file was checked
        with dir_lock(run_dir, "run directory") if ranks.main else nullcontext():
            return training.run(start_epoch, global_step, resumed=stored is not None)


def _initial_weights(config: RunConfig, space: SearchSpace) -> dict[str, torch.Tensor]:
    """The trained weights of the supernet run ``config.init_from``, which must be of ``space``."""
    source = read_run(config.init_from) if Path(config.init_from).is_dir() else None
    require(source is not None and source.checkpoint is not None and source.config.arch is None,
            f"init_from must name a supernet run directory with a checkpoint, but {config.init_from} is none",
            CheckpointError)
    require(source.space == space.describe() and source.config.weight_sharing == config.weight_sharing,
            f"init_from must be a supernet of the same space and weight sharing, but {config.init_from} was trained "
            f"on another", CheckpointError)
    return source.checkpoint["model"]


class _Training:
    """The state of one call of `train`, split into steps that read in order."""

    def __init__(self, config: RunConfig, run_dir: Path, ranks: Ranks, loaders: Loaders, space: SearchSpace,
                 arch: Architecture | None, model: nn.Module, optimizer: Optimizer, scheduler: LRScheduler,
                 strategy: Strategy, steps: int, on_progress: ProgressCallback | None, on_epoch):
        self.config, self.run_dir, self.ranks, self.loaders = config, run_dir, ranks, loaders
        self.space, self.arch, self.model, self.optimizer = space, arch, model, optimizer
        self.scheduler, self.strategy, self.steps, self.on_epoch = scheduler, strategy, steps, on_epoch
        self.on_progress = on_progress if ranks.main else None
        self.criterion = nn.CrossEntropyLoss(label_smoothing=config.label_smoothing)
        self.columns = log_columns(strategy.metric_names)
        self.trained = model
        if ranks.world_size > 1:
            # a supernet leaves most of its ops out of every step; DDP must look for them
            self.trained = DistributedDataParallel(model, device_ids=[ranks.device] if ranks.device.type == "cuda"
                                                   else None, find_unused_parameters=arch is None)

    def run(self, start_epoch: int, global_step: int, resumed: bool) -> TrainResult:
        config, ranks = self.config, self.ranks
        writer = None
        if ranks.main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            if not resumed:
                write_config(self.run_dir, config, self.space, self.arch)
            truncate_log(self.run_dir / LOG_FILE, start_epoch, self.columns)
            from torch.utils.tensorboard import SummaryWriter

            # purge_step hides events an interrupted attempt logged after its last checkpoint
            writer = SummaryWriter(str(self.run_dir), purge_step=global_step if start_epoch else None)
            if not start_epoch:
                writer.add_text("config", f"```\n{json.dumps(config.to_dict(), indent=2)}\n```")
            if 0 < start_epoch < config.epochs:
                log.info("resuming %s after epoch %d/%d", self.run_dir, start_epoch, config.epochs)
        calibration = self._calibration() if ranks.main and start_epoch < config.epochs else []
        history = []
        try:
            for epoch in range(start_epoch, config.epochs):
                started = time.perf_counter()
                seed_epoch(self.loaders.train, config.seed, epoch, ranks.rank)
                self.strategy.begin_epoch(epoch)
                loss, acc, images_per_s, global_step = self._train_epoch(epoch, global_step, writer)
                if ranks.main:
                    val_acc = self.strategy.validate(self.model, self.loaders.val, calibration)
                    stats = EpochStats(epoch + 1, loss, acc, val_acc, self.scheduler.get_last_lr()[0],
                                       images_per_s, time.perf_counter() - started, self.strategy.metrics())
                    self._save(stats, global_step, writer)
                    history.append(stats)
                    if self.on_epoch is not None:
                        self.on_epoch(stats)
            test_acc = None
            if self.arch is not None and ranks.main:
                test_acc = accuracy(self.model, self.loaders.test)
                writer.add_scalar("test/acc", test_acc, global_step)
        finally:
            if writer is not None:
                writer.close()
        if ranks.world_size > 1:
            dist.barrier()
        return TrainResult(self.model, self.space, self.arch, self.strategy, start_epoch, history, test_acc,
                           ranks.rank)

    def _calibration(self) -> list[torch.Tensor]:
        """Training batches for BN recalibration, under the eval transform (the distribution the statistics
        will serve) and in a fixed order, so every epoch's validation sees the same batches."""
        if not self.strategy.needs_calibration:
            return []
        plain = build_loaders(self.config.dataset, augment=False, **self.config.loader_options())
        return calibration_batches(plain.train, self.config.bn_batches)

    def _batches(self):
        """``self.steps`` batches of the training loader, starting it again when it runs out."""
        done = 0
        while done < self.steps:
            for batch in self.loaders.train:
                yield batch
                done += 1
                if done == self.steps:
                    return

    def _train_epoch(self, epoch: int, global_step: int, writer) -> tuple[float, float, float, int]:
        device = self.ranks.device
        self.trained.train()
        totals = torch.zeros(3, dtype=torch.float64, device=device)  # loss sum, correct, (sample, path) pairs
        images, started = 0, time.perf_counter()
        task = f"epoch {epoch + 1}/{self.config.epochs}"
        report(self.on_progress, task, 0, self.steps)
        for i, (x, y) in enumerate(self._batches()):
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            result = self.strategy.step(self.trained, x, y, criterion=self.criterion, optimizer=self.optimizer,
                                        step=global_step)
            self.scheduler.step()
            global_step += 1
            images += len(y)
            totals += torch.stack([result.loss_sum.double(), result.correct.double(),
                                   torch.tensor(float(result.seen), device=device, dtype=torch.float64)])
            if (i + 1) % REFRESH_STEPS == 0 or i + 1 == self.steps:
                loss, correct, seen = totals.tolist()
                rate = images * self.ranks.world_size / (time.perf_counter() - started)
                report(self.on_progress, task, i + 1, self.steps,
                       f"loss {loss / seen:.3f}  acc {100 * correct / seen:.1f} %  {rate:.0f} img/s  "
                       f"{torch.get_num_threads()} thread(s)")
                if writer is not None:
                    writer.add_scalar("train/loss_step", result.loss_sum.item() / result.seen, global_step)
        images_per_s = images * self.ranks.world_size / (time.perf_counter() - started)
        if self.ranks.world_size > 1:
            dist.all_reduce(totals)
        loss, correct, seen = totals.tolist()
        return loss / seen, 100 * correct / seen, images_per_s, global_step

    def _save(self, stats: EpochStats, global_step: int, writer) -> None:
        """Log first, checkpoint second: a kill in between leaves a log row that resumption drops."""
        append_log(self.run_dir / LOG_FILE, stats, self.columns)
        for name, value in stats.row().items():
            if name not in ("epoch", "wall_s") and value is not None:
                writer.add_scalar(f"epoch/{name}", value, global_step)
        writer.flush()
        write_checkpoint(self.run_dir, {
            "space": self.space.describe(), "epoch": stats.epoch, "global_step": global_step,
            "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(), "strategy": self.strategy.state_dict()})

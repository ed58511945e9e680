"""Training a supernet (uniform or strictly fair path sampling) or one architecture from scratch.

`train(config, run_dir)` is the whole loop: data, model, optimizer, learning-rate schedule, label
smoothing, a progress bar, logs, checkpoints, resumption and DistributedDataParallel. Launched by
``torchrun --nproc_per_node N``, every rank trains its shard of the data, all ranks train the same
path at each step, and only rank 0 writes.

A run directory holds:

- ``config.json``: the hwnas version, the search space (`SearchSpace.describe()`, enough to rebuild
  it), the trained architecture (retraining only) and every `RunConfig` field.
- ``checkpoint.pt``: model, optimizer, scheduler and strategy state, the number of finished epochs
  and the global step; tensors and plain Python values only, read with ``torch.load(weights_only=True)``,
  written to a temporary file that replaces the old one, so a kill never leaves half a checkpoint.
- ``log.csv``: one row per finished epoch: epoch, train_loss, train_acc, val_acc, lr, images_per_s,
  wall_s (the epoch's seconds, validation included). ``val_acc`` is the mean validation accuracy of
  a few fixed sampled paths after BN recalibration (supernets) or of the network itself (retraining).
- ``events.out.tfevents.*``: the same figures for TensorBoard, plus the training loss every few steps.

Running `train` again on the same directory resumes from the last checkpoint. Every epoch reseeds
torch's RNG and the data order from (seed, epoch, rank), and the path of every step is drawn from
(seed, step), so a resumed run repeats exactly what the interrupted one would have done; no RNG state
needs saving.
"""

from __future__ import annotations

import csv
import json
import os
import random
import sys
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, NamedTuple

import click
import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.optim import Optimizer
from torch.optim.lr_scheduler import CosineAnnealingLR, LRScheduler, StepLR
from torch.utils.data import DataLoader
from torch.utils.data.distributed import DistributedSampler

from hwnas import __version__
from hwnas.errors import CheckpointError, DeviceError, require
from hwnas.registry import Registry
from hwnas.supernet.data import DATASETS, DataSpec, Loaders, build_loaders, input_profile_for
from hwnas.supernet.evaluate import accuracy, calibration_batches, subnet_accuracy
from hwnas.supernet.sampling import fair_paths, uniform_path
from hwnas.supernet.space import Architecture, SearchSpace
from hwnas.supernet.spaces import SPACES, get_space
from hwnas.supernet.supernet import WEIGHT_SHARING, SuperNet

CONFIG_FILE = "config.json"
CHECKPOINT_FILE = "checkpoint.pt"
LOG_FILE = "log.csv"
LOG_COLUMNS = ("epoch", "train_loss", "train_acc", "val_acc", "lr", "images_per_s", "wall_s")
CHECKPOINT_FORMAT = 1
DEVICES = ("cpu", "cuda")

#: RunConfig fields that describe where a run executes, not what it trains: a resumed run may change them
ENVIRONMENT_FIELDS = frozenset({"data_root", "download", "workers", "device"})

#: steps between refreshes of the progress line and the per-step TensorBoard loss (each costs a device sync)
REFRESH_STEPS = 10


@dataclass(frozen=True)
class RunConfig:
    """Everything that determines a training run; stored in ``config.json`` and checked on resumption.

    Exactly one of ``strategy`` (train a supernet) and ``arch`` (train that architecture of the space
    from scratch) is set. ``step_size`` is in epochs (default: a third of them). ``eval_paths`` fixed
    random paths are validated after every epoch, each after recalibrating BN on ``bn_batches``
    training batches; ``resolution`` overrides the dataset's input size; ``synthetic_*`` only matter
    for the ``synthetic`` dataset. ``weight_sharing`` is the supernet's parametrisation (see
    `hwnas.supernet.supernet.LayerChoice`).
    """

    space: str
    dataset: str
    strategy: str | None = "uniform"
    arch: str | None = None
    weight_sharing: str = "entangled"
    width: float = 1.0
    epochs: int = 50
    batch_size: int = 128
    optimizer: str = "sgd"
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 4e-5
    scheduler: str = "cosine"
    step_size: int | None = None
    gamma: float = 0.1
    label_smoothing: float = 0.1
    seed: int = 0
    val_fraction: float = 0.1
    eval_paths: int = 3
    bn_batches: int = 10
    resolution: int | None = None
    synthetic_size: int = 1024
    synthetic_like: str = "cifar10"
    data_root: str | None = None
    download: bool = False
    workers: int = 0
    device: str = "cpu"

    def __post_init__(self) -> None:
        SPACES.get(self.space)
        DATASETS.get(self.dataset)
        OPTIMIZERS.get(self.optimizer)
        SCHEDULERS.get(self.scheduler)
        require((self.strategy is None) != (self.arch is None),
                f"a run trains a supernet (strategy) or one architecture (arch), not both or neither, but got "
                f"strategy={self.strategy!r}, arch={self.arch!r}")
        if self.strategy is not None:
            STRATEGIES.get(self.strategy)
        require(self.weight_sharing in WEIGHT_SHARING,
                f"weight sharing must be one of {', '.join(WEIGHT_SHARING)}, but got {self.weight_sharing!r}")
        require(self.device in DEVICES, f"device must be one of {', '.join(DEVICES)}, but got {self.device!r}")
        require(self.batch_size >= 1, f"batch size must be >= 1, but got batch_size={self.batch_size}")
        require(self.epochs >= 1, f"epochs must be >= 1, but got epochs={self.epochs}")
        require(self.lr > 0, f"learning rate must be > 0, but got lr={self.lr}")
        require(self.width > 0, f"width multiplier must be > 0, but got width={self.width}")
        require(self.momentum >= 0, f"momentum must be >= 0, but got momentum={self.momentum}")
        require(self.weight_decay >= 0, f"weight decay must be >= 0, but got weight_decay={self.weight_decay}")
        require(self.step_size is None or self.step_size >= 1,
                f"step size must be >= 1 epoch, but got step_size={self.step_size}")
        require(0 < self.gamma <= 1, f"gamma must lie in (0, 1], but got gamma={self.gamma}")
        require(0 <= self.label_smoothing < 1,
                f"label smoothing must lie in [0, 1), but got label_smoothing={self.label_smoothing}")
        require(self.eval_paths >= 0, f"eval paths must be >= 0, but got eval_paths={self.eval_paths}")
        require(self.bn_batches >= 1, f"BN recalibration needs >= 1 batch, but got bn_batches={self.bn_batches}")
        require(self.seed >= 0, f"seed must be >= 0, but got seed={self.seed}")

    @property
    def input_profile(self) -> str:
        return input_profile_for(self.dataset, self.synthetic_like)

    def loader_options(self) -> dict[str, Any]:
        """Keyword arguments of `build_loaders` that reproduce this run's data and validation split."""
        return dict(root=self.data_root, batch_size=self.batch_size, val_fraction=self.val_fraction,
                    seed=self.seed, download=self.download, workers=self.workers,
                    synthetic_size=self.synthetic_size, synthetic_like=self.synthetic_like,
                    resolution=self.resolution)

    def build_space(self, spec: DataSpec) -> tuple[SearchSpace, Architecture | None]:
        """The space fitted to the data (channels, resolution, classes), and the architecture to retrain.

        A reference architecture (``arch="FBNet-A"``) brings the channel settings it was published with.
        """
        shape = dict(width=self.width, channels=spec.channels, resolution=spec.resolution,
                     num_classes=spec.num_classes)
        if self.arch is None:
            return get_space(self.space, self.input_profile, **shape), None
        from hwnas.supernet.references import resolve_arch

        return resolve_arch(self.space, self.arch, self.input_profile, **shape)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "RunConfig":
        # runs written before weight sharing was a setting trained ops with independent weights
        return cls(**{"weight_sharing": "independent", **data})


# ---------------------------------------------------------------------------------------------------
# optimizers and schedulers

OptimizerBuilder = Callable[[Iterable[nn.Parameter], RunConfig], Optimizer]
SchedulerBuilder = Callable[[Optimizer, RunConfig, int], LRScheduler]
OPTIMIZERS: Registry[OptimizerBuilder] = Registry("optimizer")
SCHEDULERS: Registry[SchedulerBuilder] = Registry("scheduler")


@OPTIMIZERS.register("sgd")
def _sgd(params: Iterable[nn.Parameter], config: RunConfig) -> Optimizer:
    return torch.optim.SGD(params, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay)


@OPTIMIZERS.register("rmsprop")
def _rmsprop(params: Iterable[nn.Parameter], config: RunConfig) -> Optimizer:
    # decay 0.9 and eps 1e-3: the TensorFlow recipe MnasNet and FBNet trained with
    return torch.optim.RMSprop(params, lr=config.lr, alpha=0.9, eps=1e-3, momentum=config.momentum,
                               weight_decay=config.weight_decay)


@OPTIMIZERS.register("adam")
def _adam(params: Iterable[nn.Parameter], config: RunConfig) -> Optimizer:
    return torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay)


# Schedulers step once per training step, so short runs still get a smooth schedule.
@SCHEDULERS.register("cosine")
def _cosine(optimizer: Optimizer, config: RunConfig, steps_per_epoch: int) -> LRScheduler:
    return CosineAnnealingLR(optimizer, T_max=config.epochs * steps_per_epoch)


@SCHEDULERS.register("step")
def _step(optimizer: Optimizer, config: RunConfig, steps_per_epoch: int) -> LRScheduler:
    epochs = config.step_size or max(1, config.epochs // 3)
    return StepLR(optimizer, step_size=epochs * steps_per_epoch, gamma=config.gamma)


# ---------------------------------------------------------------------------------------------------
# strategies


class StepResult(NamedTuple):
    """One training step: summed loss and correct predictions over ``seen`` (sample, path) pairs."""

    loss_sum: torch.Tensor
    correct: torch.Tensor
    seen: int


class Strategy(ABC):
    """How one training step picks what it trains, and how a finished epoch is validated.

    A step must draw its randomness only from `path_rng(step)`: every rank then trains the same paths
    without communicating, and a resumed run repeats the paths of the run it continues. Strategies get
    the run's loaders so that one that learns architecture parameters can draw its own batches from
    the validation split; whatever state such a strategy keeps goes through `state_dict`, which the
    checkpoint stores (tensors and plain values only).
    """

    def __init__(self, space: SearchSpace, config: RunConfig, loaders: Loaders):
        self.space, self.seed = space, config.seed
        rng = random.Random(f"validation:{config.seed}")
        self.validation_archs = [space.sample(rng) for _ in range(config.eval_paths)]

    def path_rng(self, step: int) -> random.Random:
        return random.Random(f"path:{self.seed}:{step}")

    @abstractmethod
    def step(self, model: nn.Module, images: torch.Tensor, labels: torch.Tensor, *, criterion: nn.Module,
             optimizer: Optimizer, step: int) -> StepResult:
        """One optimizer update on one batch. ``model`` may be wrapped in DistributedDataParallel."""

    def validate(self, model: nn.Module, val_loader: DataLoader, calibration: Sequence[torch.Tensor]) -> float | None:
        """Mean validation accuracy of the fixed validation paths, each with recalibrated BN statistics."""
        if not self.validation_archs:
            return None
        accs = [subnet_accuracy(model, arch, val_loader, calibration=calibration) for arch in self.validation_archs]
        return sum(accs) / len(accs)

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        require(not state, f"strategy {type(self).__name__} keeps no state, but the checkpoint holds "
                f"{', '.join(state)}", CheckpointError)


STRATEGIES: Registry[type[Strategy]] = Registry("training strategy name")


def _train_path(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, criterion: nn.Module,
                arch: Architecture | None, synchronise: bool) -> StepResult:
    """Forward and backward of one path; gradients accumulate. Under DistributedDataParallel only the
    last backward of a step synchronises, so accumulating several paths costs one all-reduce."""
    local = model.no_sync() if isinstance(model, DistributedDataParallel) and not synchronise else nullcontext()
    with local:
        logits = model(images) if arch is None else model(images, arch)
        loss = criterion(logits, labels)
        loss.backward()
    n = len(labels)
    return StepResult(loss.detach() * n, (logits.detach().argmax(1) == labels).sum(), n)


@STRATEGIES.register("uniform")
class UniformSampling(Strategy):
    """One path per step, each layer's op drawn uniformly (SPOS)."""

    def step(self, model, images, labels, *, criterion, optimizer, step):
        arch = self.space.from_indices(uniform_path(self.space.num_ops, self.path_rng(step)))
        optimizer.zero_grad(set_to_none=True)
        result = _train_path(model, images, labels, criterion, arch, synchronise=True)
        optimizer.step()
        return result


@contextmanager
def mean_over_users(parameters: Iterable[nn.Parameter]) -> Iterator[dict[nn.Parameter, int]]:
    """Inside the block, count the backward passes that accumulate a gradient into each parameter; on
    leaving it, divide each gradient by its count, so that a parameter's gradient is the mean over the
    passes that used it rather than their sum. Yields the counts (filled as the passes run).

    Under DistributedDataParallel the division happens after the all-reduce of the last pass; every rank
    trains the same paths, so every rank divides by the same counts.
    """
    counts: dict[nn.Parameter, int] = {}

    def count(parameter: nn.Parameter) -> None:
        counts[parameter] = counts.get(parameter, 0) + 1

    handles = [p.register_post_accumulate_grad_hook(count) for p in parameters if p.requires_grad]
    try:
        yield counts
    finally:
        for handle in handles:
            handle.remove()
    with torch.no_grad():
        for parameter, n in counts.items():
            if n > 1 and parameter.grad is not None:
                parameter.grad.div_(n)


@STRATEGIES.register("fairness")
class StrictFairness(Strategy):
    """FairNAS strict fairness: m paths per step (m = ops per layer) that use every op of every layer
    exactly once, gradients accumulated, one optimizer update.

    Each parameter's gradient is the mean over the paths that used it (`mean_over_users`). With
    independent weights per op this is what FairNAS's summed gradients give every candidate op (the
    gradient of exactly one path, as large as a single-path step gives it), while the stem and head, which
    all m paths use, get the mean of their m gradients instead of FairNAS's sum. With entangled weights
    (the default), where one layer's ops share their convolution kernels, a sum would give those kernels
    up to m times a single-path step: on Fashion-MNIST (fbnet, width 0.25, 16 px, lr 0.1, 150 steps,
    `bench/fairness_gradients.py`) the median random subnet reached 18 % summed, 33 % with the mean.
    Spaces whose layers offer fewer ops than others are balanced as `hwnas.supernet.sampling.fair_paths`
    documents.
    """

    def step(self, model, images, labels, *, criterion, optimizer, step):
        paths = fair_paths(self.space.num_ops, self.path_rng(step))
        optimizer.zero_grad(set_to_none=True)
        with mean_over_users(model.parameters()):
            results = [_train_path(model, images, labels, criterion, self.space.from_indices(path),
                                   synchronise=i == len(paths) - 1) for i, path in enumerate(paths)]
        optimizer.step()
        return StepResult(sum(r.loss_sum for r in results), sum(r.correct for r in results),
                          sum(r.seen for r in results))


class StandaloneTraining(Strategy):
    """Trains one fixed architecture built as a standalone network (``hwnas retrain``)."""

    def __init__(self, space: SearchSpace, config: RunConfig, loaders: Loaders):
        super().__init__(space, replace(config, eval_paths=0), loaders)

    def step(self, model, images, labels, *, criterion, optimizer, step):
        optimizer.zero_grad(set_to_none=True)
        result = _train_path(model, images, labels, criterion, None, synchronise=True)
        optimizer.step()
        return result

    def validate(self, model, val_loader, calibration):
        return accuracy(model, val_loader)


# ---------------------------------------------------------------------------------------------------
# run directory


@dataclass(frozen=True)
class EpochStats:
    epoch: int
    train_loss: float
    train_acc: float
    val_acc: float | None
    lr: float
    images_per_s: float
    wall_s: float

    def summary(self, epochs: int) -> str:
        val = "" if self.val_acc is None else f"  val acc {self.val_acc:.2%}"
        return (f"epoch {self.epoch}/{epochs}  loss {self.train_loss:.4f}  acc {self.train_acc:.2%}{val}  "
                f"lr {self.lr:.4g}  {self.images_per_s:.0f} img/s  {self.wall_s:.1f} s")


@dataclass(frozen=True)
class StoredRun:
    """What a run directory holds before training touches it."""

    config: RunConfig
    space: dict[str, Any]
    checkpoint: dict[str, Any] | None


def read_run(run_dir: str | os.PathLike) -> StoredRun | None:
    """The config and checkpoint of an existing run directory, or None for a new one.

    Raises CheckpointError, naming the file, if either is unreadable.
    """
    run_dir = Path(run_dir)
    config_path, checkpoint_path = run_dir / CONFIG_FILE, run_dir / CHECKPOINT_FILE
    require(not run_dir.exists() or run_dir.is_dir(),
            f"a run directory must be a directory, but {run_dir} is a file", CheckpointError)
    if not config_path.exists():
        require(not checkpoint_path.exists(), f"{checkpoint_path} has no {CONFIG_FILE} beside it, so it cannot "
                "be told which run it belongs to; use another run directory", CheckpointError)
        return None
    try:
        stored = json.loads(config_path.read_text())
        config, space = RunConfig.from_dict(stored["config"]), stored["space"]
    except (ValueError, KeyError, TypeError) as exc:
        raise CheckpointError(f"{config_path} is not a hwnas run config ({_one_line(exc)}); "
                              "use another run directory") from None
    checkpoint = _read_checkpoint(checkpoint_path) if checkpoint_path.exists() else None
    if checkpoint is not None and checkpoint["space"] != space:
        raise CheckpointError(f"{checkpoint_path} was trained on another space than its {CONFIG_FILE} describes")
    return StoredRun(config, space, checkpoint)


def _read_checkpoint(path: Path) -> dict[str, Any]:
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - whatever a damaged file makes the unpickler raise
        raise CheckpointError(f"checkpoint {path} is corrupt or not a hwnas checkpoint ({_one_line(exc)}); "
                              "delete it to start the run over") from None
    expected = {"format", "space", "epoch", "global_step", "model", "optimizer", "scheduler", "strategy"}
    if not isinstance(checkpoint, dict) or checkpoint.get("format") != CHECKPOINT_FORMAT or expected - set(checkpoint):
        raise CheckpointError(f"checkpoint {path} is not a hwnas checkpoint of format {CHECKPOINT_FORMAT}; "
                              "delete it to start the run over")
    return checkpoint


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:200]


def _check_resumable(run_dir: Path, stored: StoredRun, config: RunConfig, space: SearchSpace) -> None:
    """A run resumes only with the settings it started with (the environment may change)."""
    described = space.describe()
    if stored.space != described:
        if stored.space.get("space") != described["space"]:  # another space's name says it all
            diffs = _differences({"space": stored.space.get("space")}, {"space": described["space"]})
        else:
            diffs = _differences(stored.space, described)
        raise CheckpointError(f"{run_dir} holds a run of another search space ({diffs}); use another run "
                              "directory")
    old, new = stored.config.to_dict(), config.to_dict()
    for key in ENVIRONMENT_FIELDS:
        del old[key], new[key]
    if old != new:
        raise CheckpointError(f"{run_dir} holds a run with other settings ({_differences(old, new)}); "
                              "resume with the settings it was started with, or use another run directory")


def _differences(stored: dict[str, Any], given: dict[str, Any]) -> str:
    keys = [k for k in dict.fromkeys([*stored, *given]) if stored.get(k) != given.get(k)]
    return ", ".join(f"{k} {stored.get(k)!r} there, {given.get(k)!r} here" for k in keys)


def _write_atomically(path: Path, write: Callable[[Path], None]) -> None:
    """Write to a temporary file, flush it to disk, then rename it over ``path``: a kill at any moment
    leaves either the old file or the new one."""
    tmp = path.with_name(path.name + ".tmp")
    write(tmp)
    with open(tmp, "rb+") as f:
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _write_config(run_dir: Path, config: RunConfig, space: SearchSpace, arch: Architecture | None) -> None:
    text = json.dumps({"hwnas_version": __version__, "space": space.describe(),
                       "architecture": None if arch is None else str(arch), "config": config.to_dict()}, indent=2)
    _write_atomically(run_dir / CONFIG_FILE, lambda p: p.write_text(text + "\n"))


def _truncate_log(path: Path, epochs_done: int) -> None:
    """Drop rows of epochs the checkpoint does not hold (the run was killed after logging them)."""
    if not path.exists():
        return
    with open(path, newline="") as f:
        rows = [row for row in csv.DictReader(f) if row.get("epoch", "").isdigit() and int(row["epoch"]) <= epochs_done]

    def write(tmp: Path) -> None:
        with open(tmp, "w", newline="") as f:
            writer = csv.DictWriter(f, LOG_COLUMNS, extrasaction="ignore")
            writer.writeheader()
            writer.writerows(rows)

    _write_atomically(path, write)


def _append_log(path: Path, stats: EpochStats) -> None:
    new = not path.exists()
    with open(path, "a", newline="") as f:
        writer = csv.DictWriter(f, LOG_COLUMNS)
        if new:
            writer.writeheader()
        writer.writerow({k: ("" if v is None else v) for k, v in asdict(stats).items()})
        f.flush()
        os.fsync(f.fileno())


def read_log(run_dir: str | os.PathLike) -> list[dict[str, Any]]:
    """The rows of a run's ``log.csv`` with numbers parsed (``val_acc`` None where not measured)."""
    import pandas as pd

    path = Path(run_dir) / LOG_FILE
    if not path.exists():
        return []
    frame = pd.read_csv(path).astype(object)
    return frame.where(frame.notna(), None).to_dict("records")


# ---------------------------------------------------------------------------------------------------
# distributed


@dataclass(frozen=True)
class Ranks:
    """This process's place in a (possibly single-process) run."""

    rank: int
    world_size: int
    device: torch.device

    @property
    def main(self) -> bool:
        return self.rank == 0


def check_device(device: str) -> None:
    require(device in DEVICES, f"device must be one of {', '.join(DEVICES)}, but got {device!r}")
    if device == "cuda" and not torch.cuda.is_available():
        raise DeviceError("device 'cuda' needs an NVIDIA GPU, but torch sees none; use --device cpu")


@contextmanager
def _process_group(device: str):
    """Join the process group torchrun describes in the environment (gloo on CPU, nccl on GPU), unless
    the caller already set one up; leave it afterwards only if it was joined here."""
    check_device(device)
    joined = False
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if device == "cuda" else "gloo")
        joined = True
    try:
        if dist.is_initialized():
            rank, world_size = dist.get_rank(), dist.get_world_size()
            local_rank = int(os.environ.get("LOCAL_RANK", rank))
        else:
            rank, world_size, local_rank = 0, 1, 0
        if device == "cuda":
            torch.cuda.set_device(local_rank)
            yield Ranks(rank, world_size, torch.device("cuda", local_rank))
        else:
            yield Ranks(rank, world_size, torch.device("cpu"))
    finally:
        if joined:
            dist.destroy_process_group()


def _derived_seed(*parts: object) -> int:
    return random.Random(":".join(map(str, parts))).getrandbits(63)


def _seed_epoch(loader: DataLoader, seed: int, epoch: int, rank: int) -> None:
    """Make the epoch's data order and augmentation a function of (seed, epoch, rank) alone."""
    torch.manual_seed(_derived_seed("torch", seed, epoch, rank))
    if isinstance(loader.sampler, DistributedSampler):
        loader.sampler.set_epoch(epoch)
    if loader.generator is not None:  # the shuffling sampler and the workers' seeds draw from it
        loader.generator.manual_seed(_derived_seed("data", seed, epoch))


# ---------------------------------------------------------------------------------------------------
# the training loop


@dataclass
class TrainResult:
    """``model`` is the trained SuperNet or standalone network (never DDP-wrapped); ``history`` holds the
    epochs trained by this call, after ``start_epoch`` epochs that a checkpoint already held;
    ``test_acc`` is the test-split accuracy of a retrained architecture (None for supernets and on
    ranks other than 0, which neither validate nor write)."""

    model: nn.Module
    space: SearchSpace
    arch: Architecture | None
    start_epoch: int
    history: list[EpochStats]
    test_acc: float | None
    rank: int


def build_strategy(config: RunConfig, space: SearchSpace, loaders: Loaders) -> Strategy:
    if config.arch is not None:
        return StandaloneTraining(space, config, loaders)
    return STRATEGIES.get(config.strategy)(space, config, loaders)


def train(config: RunConfig, run_dir: str | os.PathLike, *, progress: bool = True,
          on_epoch: Callable[[EpochStats], None] | None = None) -> TrainResult:
    """Train (or resume) the run ``config`` describes in ``run_dir``; see the module docstring.

    Bad settings, unusable data and a run directory that holds another run raise HwnasError subclasses
    before anything is written. ``progress`` shows a progress bar and a resumption notice on stderr;
    ``on_epoch`` is called on rank 0 after each epoch's checkpoint is written.
    """
    run_dir = Path(run_dir)
    with _process_group(config.device) as ranks:
        loaders = build_loaders(config.dataset, distributed=ranks.world_size > 1, **config.loader_options())
        space, arch = config.build_space(loaders.spec)
        if arch is not None:
            config = replace(config, arch=str(arch))
        stored = read_run(run_dir)
        if stored is not None:
            _check_resumable(run_dir, stored, config, space)
        checkpoint = stored.checkpoint if stored is not None else None

        torch.manual_seed(config.seed)  # the same initial weights on every rank and every attempt
        # channels_last: depthwise convolutions train 1.6x faster in it on CPUs (and no slower on GPUs)
        model: nn.Module = (SuperNet(space, config.weight_sharing) if arch is None else space.build(arch)).to(
            ranks.device, memory_format=torch.channels_last)
        optimizer = OPTIMIZERS.get(config.optimizer)(model.parameters(), config)
        scheduler = SCHEDULERS.get(config.scheduler)(optimizer, config, len(loaders.train))
        strategy = build_strategy(config, space, loaders)
        start_epoch, global_step = 0, 0
        if checkpoint is not None:
            try:
                model.load_state_dict(checkpoint["model"])
                optimizer.load_state_dict(checkpoint["optimizer"])
                scheduler.load_state_dict(checkpoint["scheduler"])
            except (RuntimeError, ValueError, KeyError) as exc:
                raise CheckpointError(f"checkpoint {run_dir / CHECKPOINT_FILE} does not fit this run "
                                      f"({_one_line(exc)}); delete it to start the run over") from None
            strategy.load_state_dict(checkpoint["strategy"])
            start_epoch, global_step = checkpoint["epoch"], checkpoint["global_step"]

        return _Training(config, run_dir, ranks, loaders, space, arch, model, optimizer, scheduler, strategy,
                         progress, on_epoch).run(start_epoch, global_step, resumed=stored is not None)


class _Training:
    """The state of one call of `train`, split into steps that read in order."""

    def __init__(self, config: RunConfig, run_dir: Path, ranks: Ranks, loaders: Loaders, space: SearchSpace,
                 arch: Architecture | None, model: nn.Module, optimizer: Optimizer, scheduler: LRScheduler,
                 strategy: Strategy, progress: bool, on_epoch: Callable[[EpochStats], None] | None):
        self.config, self.run_dir, self.ranks, self.loaders = config, run_dir, ranks, loaders
        self.space, self.arch, self.model, self.optimizer = space, arch, model, optimizer
        self.scheduler, self.strategy, self.progress, self.on_epoch = scheduler, strategy, progress, on_epoch
        self.criterion = nn.CrossEntropyLoss(label_smoothing=config.label_smoothing)
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
                _write_config(self.run_dir, config, self.space, self.arch)
            _truncate_log(self.run_dir / LOG_FILE, start_epoch)
            from torch.utils.tensorboard import SummaryWriter

            # purge_step hides events an interrupted attempt logged after its last checkpoint
            writer = SummaryWriter(str(self.run_dir), purge_step=global_step if start_epoch else None)
            if not start_epoch:
                writer.add_text("config", f"```\n{json.dumps(config.to_dict(), indent=2)}\n```")
            if self.progress and 0 < start_epoch < config.epochs:
                click.echo(f"resuming {self.run_dir} after epoch {start_epoch}/{config.epochs}", err=True)
        calibration = self._calibration() if ranks.main and start_epoch < config.epochs else []
        history = []
        try:
            for epoch in range(start_epoch, config.epochs):
                started = time.perf_counter()
                _seed_epoch(self.loaders.train, config.seed, epoch, ranks.rank)
                loss, acc, images_per_s, global_step = self._train_epoch(epoch, global_step, writer)
                if ranks.main:
                    val_acc = self.strategy.validate(self.model, self.loaders.val, calibration)
                    stats = EpochStats(epoch + 1, loss, acc, val_acc, self.scheduler.get_last_lr()[0],
                                       images_per_s, time.perf_counter() - started)
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
        return TrainResult(self.model, self.space, self.arch, start_epoch, history, test_acc, ranks.rank)

    def _calibration(self) -> list[torch.Tensor]:
        """Training batches for BN recalibration, under the eval transform (the distribution the statistics
        will serve) and in a fixed order, so every epoch's validation paths see the same batches."""
        if not self.strategy.validation_archs:
            return []
        plain = build_loaders(self.config.dataset, augment=False, **self.config.loader_options())
        return calibration_batches(plain.train, self.config.bn_batches)

    def _train_epoch(self, epoch: int, global_step: int, writer) -> tuple[float, float, float, int]:
        device, loader = self.ranks.device, self.loaders.train
        self.trained.train()
        totals = torch.zeros(3, dtype=torch.float64, device=device)  # loss sum, correct, (sample, path) pairs
        images, started = 0, time.perf_counter()
        label, text = f"epoch {epoch + 1}/{self.config.epochs}", ""
        with click.progressbar(length=len(loader), label=label, file=sys.stderr, show_pos=True,
                               item_show_func=lambda shown: shown,
                               hidden=not (self.progress and self.ranks.main)) as bar:
            for i, (x, y) in enumerate(loader):
                x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
                result = self.strategy.step(self.trained, x, y, criterion=self.criterion, optimizer=self.optimizer,
                                            step=global_step)
                self.scheduler.step()
                global_step += 1
                images += len(y)
                totals += torch.stack([result.loss_sum.double(), result.correct.double(),
                                       torch.tensor(float(result.seen), device=device, dtype=torch.float64)])
                if (i + 1) % REFRESH_STEPS == 0 or i + 1 == len(loader):
                    loss, correct, seen = totals.tolist()
                    rate = images * self.ranks.world_size / (time.perf_counter() - started)
                    text = f"loss {loss / seen:.3f}  acc {correct / seen:.1%}  {rate:.0f} img/s"
                    if writer is not None:
                        writer.add_scalar("train/loss_step", result.loss_sum.item() / result.seen, global_step)
                bar.update(1, text)
        images_per_s = images * self.ranks.world_size / (time.perf_counter() - started)
        if self.ranks.world_size > 1:
            dist.all_reduce(totals)
        loss, correct, seen = totals.tolist()
        return loss / seen, correct / seen, images_per_s, global_step

    def _save(self, stats: EpochStats, global_step: int, writer) -> None:
        """Log first, checkpoint second: a kill in between leaves a log row that resumption drops."""
        _append_log(self.run_dir / LOG_FILE, stats)
        for name in ("train_loss", "train_acc", "val_acc", "lr", "images_per_s"):
            value = getattr(stats, name)
            if value is not None:
                writer.add_scalar(f"epoch/{name}", value, global_step)
        writer.flush()
        state = {"format": CHECKPOINT_FORMAT, "space": self.space.describe(), "epoch": stats.epoch,
                 "global_step": global_step, "model": self.model.state_dict(),
                 "optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
                 "strategy": self.strategy.state_dict()}
        _write_atomically(self.run_dir / CHECKPOINT_FILE, lambda p: torch.save(state, p))

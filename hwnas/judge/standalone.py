"""Architectures trained stand-alone from scratch with one recipe: what `hwnas rank` and `hwnas report` judge
supernets and searches by.

Each architecture is an ordinary retraining run (`hwnas.training.train` with ``arch``) in a run directory of
its own, ``OUT/NNN-<arch digest>``, resumable after a kill; when it is done, its ``result.json`` records the
test accuracy (the official test split, which no supernet, search or calibration ever looked at), and a
finished architecture is never trained again. Under ``torchrun --nproc_per_node N``, process r trains the
architectures r, r + N, ...: each training is a process of its own (no DDP), seeded alike wherever it runs,
so the results do not depend on how many processes shared the work; every process then waits for the others.
"""

from __future__ import annotations

import datetime
import hashlib
import math
import os
import signal
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch.distributed as dist

from hwnas.errors import CheckpointError, HwnasError, TargetError, require, require_finite
from hwnas.files import dump_json, write_atomic
from hwnas.progress import ProgressCallback
from hwnas.readers import read_json
from hwnas.training import RunConfig, train

RESULT = "result.json"


@dataclass(frozen=True)
class Recipe:
    """How every architecture is trained stand-alone (the `RunConfig` settings that are not data or arch;
    their defaults are `RunConfig`'s, but for fewer epochs)."""

    epochs: int = 10
    steps_per_epoch: int = RunConfig.steps_per_epoch
    batch_size: int = RunConfig.batch_size
    optimizer: str = RunConfig.optimizer
    lr: float = RunConfig.lr
    momentum: float = RunConfig.momentum
    weight_decay: float = RunConfig.weight_decay
    scheduler: str = RunConfig.scheduler
    label_smoothing: float = RunConfig.label_smoothing
    seed: int = RunConfig.seed
    device: str = RunConfig.device

    def __post_init__(self) -> None:
        require_finite(self)
        require(isinstance(self.epochs, int) and self.epochs >= 1, f"epochs must be >= 1, but got epochs={self.epochs}")

    def settings(self) -> dict[str, Any]:
        return asdict(self)

    def run_config(self, space: str, arch: str, data: dict[str, Any]) -> RunConfig:
        return RunConfig(space=space, strategy=None, arch=arch, eval_paths=0, **data, **asdict(self))


@dataclass(frozen=True)
class Trained:
    """One architecture trained stand-alone: its name (an architecture string or a reference's name), the run
    directory of its first training and its accuracies (%): test split, and the last epoch's validation, each
    the mean over its trainings (one per seed), whose test accuracies ``test_accs`` lists."""

    name: str
    run_dir: Path
    test_acc: float
    val_acc: float | None
    test_accs: tuple[float, ...] = ()

    @property
    def test_acc_sd(self) -> float:
        """Standard deviation of the test accuracy over the seeds (NaN for one training)."""
        return float(np.std(self.test_accs, ddof=1)) if len(self.test_accs) > 1 else math.nan


def slot(index: int, name: str, seed_index: int = 0, seed: int = 0) -> str:
    """The run directory name of the ``index``-th architecture's ``seed_index``-th training (with ``seed``):
    stable, short, and readable in order."""
    return f"{index:03d}-{hashlib.sha256(name.encode()).hexdigest()[:10]}" + (f"-seed{seed}" if seed_index else "")


@contextmanager
def job():
    """This process's (rank, world size) in the torchrun job the environment describes, or (0, 1); inside a
    job of several processes, they share a gloo group for `barrier` and `share` (trainings run alone)."""
    rank, world = int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))
    joined = world > 1 and not dist.is_initialized()
    previous = None
    if world > 1:
        # torchrun stops the other processes (SIGTERM) when one fails or is killed: say so in one line
        previous = signal.signal(signal.SIGTERM, _stopped)
    if joined:
        # trainings of hours between two barriers: the default 30 min would end a healthy job
        dist.init_process_group("gloo", timeout=datetime.timedelta(hours=72))
    try:
        yield rank, world
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
        if joined and dist.is_initialized():
            dist.destroy_process_group()


def _stopped(signum: int, frame: Any) -> None:
    raise TargetError("this torchrun job was stopped (another of its processes failed or was killed); every "
                      "finished training and the last epoch of each other one are kept: run the same command "
                      "again to resume")


def barrier(world: int, out: Path, total: int) -> None:
    """Wait for the other processes of the job; one that stopped is a one-line TargetError that says how
    many trainings are done and that running the command again resumes."""
    if world == 1:
        return
    try:
        dist.barrier()
    except (RuntimeError, dist.DistBackendError) as exc:
        done = len(list(out.glob(f"*/{RESULT}")))
        raise TargetError(f"a process of this torchrun job stopped ({' '.join(str(exc).split())[:120]}); {done} of "
                          f"{total} trainings are done in {out}: run the same command again to resume") from None


def share(world: int, value: Any) -> Any:
    """Rank 0's ``value`` (plain data) on every process of the job."""
    if world == 1:
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def _finished(folders: Sequence[Path], recipe: Recipe, data: dict[str, Any]) -> dict[str, tuple[Path, dict]]:
    """The finished trainings in ``folders`` (runs of other rankings or reports) with this recipe and data,
    by name: the run directory where each was trained (a result reused there names it) and its result."""
    found: dict[str, tuple[Path, dict]] = {}
    for folder in folders:
        for file in sorted(Path(folder).glob(f"*/{RESULT}")):
            done = read_json(file, "a stand-alone training's result.json", HwnasError)
            if done.get("recipe") == recipe.settings() and done.get("data") == data:
                source = Path(done.pop("trained_in", file.parent))
                found.setdefault(str(done.get("name")), (source, done))
    return found


def train_standalone(entries: list[tuple[str, str]], recipe: Recipe, data: dict[str, Any], out: Path, *,
                     seeds: int = 1, on_progress: ProgressCallback | None = None, rank: int = 0, world: int = 1,
                     reuse: Sequence[Path] = ()) -> list[Trained]:
    """Train every (space, architecture or reference name) of ``entries`` stand-alone with ``recipe`` on the
    ``data`` settings (`hwnas.training.trained.data_settings`), ``seeds`` times each (seeds ``recipe.seed``,
    ``recipe.seed + 1``, ...), in ``out``; return them in order, each with the mean of its trainings. Process
    ``rank`` of ``world`` (see `job`) trains the trainings rank, rank + world, ... and then waits for the
    others. A training done to the end with the same recipe, seed and data in one of the ``reuse`` folders is
    not done again: its result.json here names the run it comes from (``trained_in``).

    Settings are checked for every entry before any training starts.
    """
    require(isinstance(seeds, int) and seeds >= 1, f"seeds must be >= 1, but got seeds={seeds}")
    recipes = [replace(recipe, seed=recipe.seed + j) for j in range(seeds)]
    for space, name in entries:  # bad settings: before any training
        recipe.run_config(space, name, data)
    out.mkdir(parents=True, exist_ok=True)
    elsewhere = [_finished(reuse, r, data) for r in recipes]
    work = [(index, j) for index in range(len(entries)) for j in range(seeds)]
    for position, (index, j) in enumerate(work):
        if position % world != rank:
            continue
        name, mine = entries[index][1], recipes[j]
        run_dir = out / slot(index, name, j, mine.seed)
        if (run_dir / RESULT).exists():
            done = read_json(run_dir / RESULT, "a stand-alone training's result.json", HwnasError)
            require(done.get("recipe") == mine.settings(), f"{run_dir} holds a training with another recipe "
                    f"({done.get('recipe')}); use another output directory", HwnasError)
            continue  # trained before: never again
        if name in elsewhere[j]:
            source, done = elsewhere[j][name]
            run_dir.mkdir(parents=True, exist_ok=True)
            write_atomic(run_dir / RESULT, dump_json({**done, "trained_in": str(source.resolve())}, indent=2) + "\n")
            continue
        config = mine.run_config(entries[index][0], name, data)
        result = train(config, run_dir, on_progress=on_progress, alone=True)
        write_atomic(run_dir / RESULT, dump_json({"name": name, "arch": None if result.arch is None else
                                                  str(result.arch), "test_acc": result.test_acc,
                                                  "val_acc": result.history[-1].val_acc if result.history else None,
                                                  "epochs": config.epochs, "recipe": mine.settings(),
                                                  "data": data}, indent=2) + "\n")
    barrier(world, out, len(work))
    trained = []
    for index, (_, name) in enumerate(entries):
        runs = [_read(out / slot(index, name, j, r.seed), name) for j, r in enumerate(recipes)]
        vals = [v for _, v in runs if v is not None]
        trained.append(Trained(name, out / slot(index, name), float(np.mean([t for t, _ in runs])),
                               float(np.mean(vals)) if vals else None, tuple(t for t, _ in runs)))
    return trained


def _read(run_dir: Path, name: str) -> tuple[float, float | None]:
    """(test accuracy, validation accuracy) of the finished training in ``run_dir``."""
    data = read_json(run_dir / RESULT, "a stand-alone training's result.json", HwnasError,
                     fields={"name": str, "test_acc": float})
    require(data["name"] == name, f"{run_dir / RESULT} must hold {name!r}, but holds {data['name']!r}", HwnasError)
    return float(data["test_acc"]), data.get("val_acc")


def saved_plan(file: Path, kind: str, config: dict, make: Callable[[], list]) -> list:
    """The plan (which architectures to train) saved in ``file`` by a command with the same ``config``, or
    ``make()`` saved there: a resumed command trains exactly what it set out to."""
    from hwnas.search.results import config_diffs

    if file.exists():
        saved = read_json(file, f"a {kind} file", CheckpointError, fields={"config": dict, "plan": list})
        diffs = config_diffs(saved["config"], config)
        if diffs:
            raise CheckpointError(f"{file.parent} holds the work of another configuration ({'; '.join(diffs[:3])}); "
                                  f"choose another output directory")
        return saved["plan"]
    plan = make()
    write_atomic(file, dump_json({"kind": kind, "config": config, "plan": plan}, indent=2) + "\n")
    return plan

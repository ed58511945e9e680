"""The run directory of a training run: what is in it, how it is written and how it is read back.

A run directory holds:

- ``config.json``: the hwnas version, the search space (`SearchSpace.describe()`, enough to rebuild
  it), the trained architecture (retraining only) and every `RunConfig` field.
- ``checkpoint.pt``: model, optimizer, scheduler and strategy state (a differentiable run's architecture
  parameters among it), the number of finished epochs and the global step; tensors and plain Python
  values only, read with ``torch.load(weights_only=True)``, written to a temporary file that replaces
  the old one, so a kill never leaves half a checkpoint.
- ``log.csv``: one row per finished epoch: epoch, train_loss, train_acc (%), val_acc (%), lr,
  images_per_s, wall_s (the epoch's seconds, validation included), then the strategy's own figures
  (the differentiable strategy's expected latency and temperature). ``val_acc`` is the mean validation
  accuracy of a few fixed sampled paths after BN recalibration (supernets), of the current argmax
  architecture (differentiable), or of the network itself (retraining).
- ``events.out.tfevents.*``: the same figures for TensorBoard, plus the training loss every few steps.
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from hwnas import __version__
from hwnas.errors import CheckpointError, require
from hwnas.files import append_line, dump_json, write_atomic
from hwnas.readers import Column, read_csv, read_json, read_text
from hwnas.space import Architecture, SearchSpace
from hwnas.training.config import ENVIRONMENT_FIELDS, RunConfig

CONFIG_FILE = "config.json"
CHECKPOINT_FILE = "checkpoint.pt"
LOG_FILE = "log.csv"
LOG_COLUMNS = ("epoch", "train_loss", "train_acc", "val_acc", "lr", "images_per_s", "wall_s")
CHECKPOINT_FORMAT = 2
CHECKPOINT_KEYS = frozenset({"format", "space", "epoch", "global_step", "model", "optimizer", "scheduler",
                             "strategy"})


@dataclass(frozen=True)
class EpochStats:
    """One finished epoch; accuracies in percent, ``extra`` the strategy's own figures."""

    epoch: int
    train_loss: float
    train_acc: float
    val_acc: float | None
    lr: float
    images_per_s: float
    wall_s: float
    extra: dict[str, float] = field(default_factory=dict)

    def row(self) -> dict[str, Any]:
        return {**{k: v for k, v in asdict(self).items() if k != "extra"}, **self.extra}

    def summary(self, epochs: int) -> str:
        val = "" if self.val_acc is None else f"  val acc {self.val_acc:.2f} %"
        extra = "".join(f"  {k} {v:.4g}" for k, v in self.extra.items())
        return (f"epoch {self.epoch}/{epochs}  loss {self.train_loss:.4f}  acc {self.train_acc:.2f} %{val}  "
                f"lr {self.lr:.4g}  {self.images_per_s:.0f} img/s  {self.wall_s:.1f} s{extra}")


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
    stored = read_json(config_path, "a run's config.json", CheckpointError, fields={"space": dict, "config": dict})
    try:
        config, space = RunConfig.from_dict(stored["config"]), stored["space"]
    except (ValueError, KeyError, TypeError) as exc:
        raise CheckpointError(f"{config_path} is not a hwnas run config ({one_line(exc)}); "
                              "use another run directory") from None
    checkpoint = read_checkpoint(checkpoint_path) if checkpoint_path.exists() else None
    if checkpoint is not None and checkpoint["space"] != space:
        raise CheckpointError(f"{checkpoint_path} was trained on another space than its {CONFIG_FILE} describes")
    return StoredRun(config, space, checkpoint)


def read_checkpoint(path: Path) -> dict[str, Any]:
    """A checkpoint of this format, loaded with ``weights_only=True``; anything else is a CheckpointError."""
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - whatever a damaged file makes the unpickler raise
        raise CheckpointError(f"checkpoint {path} is corrupt or not a hwnas checkpoint ({one_line(exc)}); "
                              "delete it to start the run over") from None
    if (not isinstance(checkpoint, dict) or checkpoint.get("format") != CHECKPOINT_FORMAT
            or CHECKPOINT_KEYS - set(checkpoint)):
        raise CheckpointError(f"checkpoint {path} is not a hwnas checkpoint of format {CHECKPOINT_FORMAT}; "
                              "delete it to start the run over")
    return checkpoint


def write_checkpoint(run_dir: Path, state: dict[str, Any]) -> None:
    require(set(state) | {"format"} == CHECKPOINT_KEYS,
            f"a checkpoint holds {sorted(CHECKPOINT_KEYS)}, but got {sorted(state)}")
    buffer = io.BytesIO()  # serialised first: torch's own writer reports a full disk as a RuntimeError
    torch.save({**state, "format": CHECKPOINT_FORMAT}, buffer)
    write_atomic(run_dir / CHECKPOINT_FILE, buffer.getvalue())


def one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:200]


def check_resumable(run_dir: Path, stored: StoredRun, config: RunConfig, space: SearchSpace) -> None:
    """A run resumes only with the settings it started with (the environment may change)."""
    described = space.describe()
    if stored.space != described:
        if stored.space.get("space") != described["space"]:  # another space's name says it all
            diffs = differences({"space": stored.space.get("space")}, {"space": described["space"]})
        else:
            diffs = differences(stored.space, described)
        raise CheckpointError(f"{run_dir} holds a run of another search space ({diffs}); use another run "
                              "directory")
    old, new = stored.config.to_dict(), config.to_dict()
    for key in ENVIRONMENT_FIELDS:
        del old[key], new[key]
    if old != new:
        raise CheckpointError(f"{run_dir} holds a run with other settings ({differences(old, new)}); "
                              "resume with the settings it was started with, or use another run directory")


def differences(stored: dict[str, Any], given: dict[str, Any]) -> str:
    keys = [k for k in dict.fromkeys([*stored, *given]) if stored.get(k) != given.get(k)]
    return ", ".join(f"{k} {stored.get(k)!r} there, {given.get(k)!r} here" for k in keys)


def write_config(run_dir: Path, config: RunConfig, space: SearchSpace, arch: Architecture | None) -> None:
    text = dump_json({"hwnas_version": __version__, "space": space.describe(),
                      "architecture": None if arch is None else str(arch), "config": config.to_dict()}, indent=2)
    write_atomic(run_dir / CONFIG_FILE, text + "\n")


def log_columns(metric_names: Sequence[str]) -> tuple[str, ...]:
    return (*LOG_COLUMNS, *metric_names)


def truncate_log(path: Path, epochs_done: int, columns: Sequence[str]) -> None:
    """Drop rows of epochs the checkpoint does not hold (the run was killed after logging them)."""
    if not path.exists():
        return
    text = read_text(path, "a run's log.csv", CheckpointError)
    rows = [row for row in csv.DictReader(io.StringIO(text, newline=""))
            if (row.get("epoch") or "").isdigit() and int(row["epoch"]) <= epochs_done]

    def write(tmp: Path) -> None:
        with open(tmp, "w", newline="") as f:
            writer = csv.DictWriter(f, columns, extrasaction="ignore")
            writer.writeheader()
            writer.writerows(rows)

    write_atomic(path, write)


def append_log(path: Path, stats: EpochStats, columns: Sequence[str]) -> None:
    new = not path.exists()
    with open(path, "a", newline="") as f:
        if new:
            append_line(f, ",".join(columns))
        values = stats.row()
        append_line(f, ",".join("" if values.get(c) is None else str(values[c]) for c in columns))


def read_log(run_dir: str | os.PathLike) -> list[dict[str, Any]]:
    """The rows of a run's ``log.csv`` with numbers parsed (``val_acc`` None where not measured). A row cut short
    at the end (a kill while it was appended) is dropped with a warning; anything else unreadable is a
    CheckpointError naming the file and the line."""
    path = Path(run_dir) / LOG_FILE
    if not path.exists():
        return []
    # a diverged epoch's loss is nan, and the log says so
    columns = {"epoch": Column("int", 1),
               **{name: Column("float", empty=name == "val_acc") for name in LOG_COLUMNS[1:]}}
    frame = read_csv(path, "a run's log.csv", columns, CheckpointError).astype(object)
    return frame.where(frame.notna(), None).to_dict("records")

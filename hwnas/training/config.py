"""`RunConfig`: everything that determines a training run, stored in the run directory's ``config.json``.

This module imports no torch, so that the command line can take its option defaults from here without
paying for torch's import on ``--help``; the registries a config is checked against are imported when a
config is made.
"""

from __future__ import annotations

from dataclasses import MISSING, asdict, dataclass, field, fields
from typing import Any

from hwnas.errors import require, require_finite

DEVICES = ("cpu", "cuda")

#: RunConfig fields that describe where a run executes, not what it trains: a resumed run may change them
ENVIRONMENT_FIELDS = frozenset({"data_root", "download", "workers", "device"})


@dataclass(frozen=True)
class RunConfig:
    """Everything that determines a training run; stored in ``config.json`` and checked on resumption.

    Exactly one of ``strategy`` (train a supernet) and ``arch`` (train that architecture of the space
    from scratch) is set; ``strategy_settings`` are the strategy's own settings (the differentiable
    strategy's table, target and architecture-parameter settings; empty for the others).
    ``step_size`` is in epochs (default: a third of them); ``steps_per_epoch`` limits (or, above the
    training split's batches, extends) an epoch (0: one pass over the training split). ``eval_paths``
    fixed random paths are validated after every epoch, each after recalibrating BN on ``bn_batches``
    training batches. ``seed`` seeds weights, paths and data order, ``split_seed`` (default: ``seed``)
    the validation split; ``resolution`` overrides the dataset's input size; ``synthetic_*`` only matter
    for the ``synthetic`` dataset. ``weight_sharing`` is the supernet's parametrisation (see
    `hwnas.supernet.supernet.LayerChoice`); ``init_from`` names a supernet run directory whose trained
    weights this run starts from.
    """

    space: str
    dataset: str
    strategy: str | None = "uniform"
    arch: str | None = None
    strategy_settings: dict[str, Any] = field(default_factory=dict)
    weight_sharing: str = "entangled"
    width: float = 1.0
    epochs: int = 50
    steps_per_epoch: int = 0
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
    split_seed: int | None = None
    val_fraction: float = 0.1
    eval_paths: int = 3
    bn_batches: int = 10
    resolution: int | None = None
    synthetic_size: int = 1024
    synthetic_like: str = "cifar10"
    init_from: str | None = None
    data_root: str | None = None
    download: bool = False
    workers: int = 0
    device: str = "cpu"

    def __post_init__(self) -> None:
        from hwnas.data import DATASETS
        from hwnas.space import SPACES
        from hwnas.supernet.supernet import WEIGHT_SHARING
        from hwnas.training.optim import OPTIMIZERS, SCHEDULERS
        from hwnas.training.strategies import STRATEGIES

        require_finite(self)
        SPACES.get(self.space)
        DATASETS.get(self.dataset)
        OPTIMIZERS.get(self.optimizer)
        SCHEDULERS.get(self.scheduler)
        require((self.strategy is None) != (self.arch is None),
                f"a run trains a supernet (strategy) or one architecture (arch), not both or neither, but got "
                f"strategy={self.strategy!r}, arch={self.arch!r}")
        if self.strategy is not None:
            STRATEGIES.get(self.strategy).check_settings(self.strategy_settings)
        else:
            require(not self.strategy_settings, f"retraining an architecture takes no strategy settings, but got "
                    f"{sorted(self.strategy_settings)}")
        require(self.weight_sharing in WEIGHT_SHARING,
                f"weight sharing must be one of {', '.join(WEIGHT_SHARING)}, but got {self.weight_sharing!r}")
        require(self.device in DEVICES, f"device must be one of {', '.join(DEVICES)}, but got {self.device!r}")
        require(self.batch_size >= 1, f"batch size must be >= 1, but got batch_size={self.batch_size}")
        require(self.epochs >= 1, f"epochs must be >= 1, but got epochs={self.epochs}")
        require(self.steps_per_epoch >= 0, f"steps per epoch must be >= 0, but got steps_per_epoch={self.steps_per_epoch}")
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
        require(self.resolution is None or 1 <= self.resolution <= 2048,
                f"resolution must lie in [1, 2048], but got resolution={self.resolution}")
        require(self.seed >= 0, f"seed must be >= 0, but got seed={self.seed}")
        require(self.split_seed is None or self.split_seed >= 0,
                f"split seed must be >= 0, but got split_seed={self.split_seed}")
        require(self.init_from is None or self.arch is None,
                f"a retrained architecture starts from scratch, but got init_from={self.init_from!r}")

    def loader_options(self) -> dict[str, Any]:
        """Keyword arguments of `hwnas.data.build_loaders` that reproduce this run's data and its split."""
        return dict(root=self.data_root, batch_size=self.batch_size, val_fraction=self.val_fraction,
                    seed=self.seed, split_seed=self.split_seed, download=self.download, workers=self.workers,
                    synthetic_size=self.synthetic_size, synthetic_like=self.synthetic_like,
                    resolution=self.resolution)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        require(not unknown, f"run settings must be among RunConfig's fields, but got unknown {unknown}")
        return cls(**data)


def default(name: str) -> Any:
    """The default of RunConfig field ``name`` (what the command line shows and uses)."""
    value = RunConfig.__dataclass_fields__[name].default
    require(value is not MISSING, f"RunConfig.{name} has no default")
    return value

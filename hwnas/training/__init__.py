"""Training: supernets (uniform, strict fairness, sandwich, anchored, differentiable) and single architectures from scratch.

`RunConfig` says what to train, `train(config, run_dir)` is the one training loop (checkpoints,
resumption, logs, progress, torchrun DDP), strategies are registered by name in `STRATEGIES`, and
`hwnas.training.trained` opens a finished run: its supernet, its own data split, its evaluator.
"""

from hwnas.training import anchored, differentiable, sandwich  # noqa: F401  (registration)
from hwnas.training.anchored import AnchoredSampling, AnchoredSettings
from hwnas.training.config import RunConfig
from hwnas.training.loop import TrainResult, train
from hwnas.training.optim import OPTIMIZERS, SCHEDULERS
from hwnas.training.run_dir import EpochStats, read_log, read_run
from hwnas.training.sandwich import Sandwich, SandwichSettings
from hwnas.training.strategies import STRATEGIES, StandaloneTraining, Strategy, StrictFairness, UniformSampling
from hwnas.training.trained import load_supernet, open_evaluator, run_loaders

__all__ = [
    "AnchoredSampling", "AnchoredSettings", "OPTIMIZERS", "SCHEDULERS", "STRATEGIES", "EpochStats", "RunConfig", "Sandwich", "SandwichSettings", "StandaloneTraining", "Strategy",
    "StrictFairness", "TrainResult", "UniformSampling", "load_supernet", "open_evaluator", "read_log", "read_run",
    "run_loaders", "train",
]

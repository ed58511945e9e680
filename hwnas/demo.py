"""`hwnas demo`: the whole pipeline on Fashion-MNIST in minutes on a laptop CPU.

1. profile every block of a small FBNet space on a device into a lookup table;
2. train a supernet with uniform single-path sampling;
3. evolution at three latency targets (the 20th, 50th and 80th percentile of the table's latencies of
   random architectures), scored by the supernet with BN recalibration;
4. a Pareto chart of all three searches and a short summary.

Every step writes into one directory with the same files the individual commands write, so each can be
inspected or rerun by hand (the summary prints the equivalent commands).
"""

from __future__ import annotations

import logging
import random
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from hwnas.data import build_loaders
from hwnas.devices import get_device
from hwnas.errors import DataError
from hwnas.profiler.build import profile_space
from hwnas.profiler.protocol import Protocol
from hwnas.progress import ProgressCallback
from hwnas.search import load_search, make_strategy, run_sweep
from hwnas.search.pareto import chart_data
from hwnas.search.plot import draw_chart
from hwnas.space import get_space
from hwnas.training import RunConfig, open_evaluator, train

log = logging.getLogger(__name__)

#: a quicker protocol than the default: the demo's table has to be built in about a minute
DEMO_PROTOCOL = Protocol(warmup_s=0.05, min_block_s=0.01, rounds=5)


@dataclass
class DemoSettings:
    space: str = "fbnet"
    width: float = 0.25
    resolution: int = 16  # Fashion-MNIST's 28x28 resized: 2x faster training, the demo fits in 10 minutes
    device: str = "ort-mobile"
    epochs: int = 3
    batch_size: int = 128
    lr: float = 0.1
    population: int = 16
    generations: int = 4
    parents: int = 4
    bn_batches: int = 4
    val_batches: int = 8
    seed: int = 0
    data_root: str | None = None
    download: bool = False
    percentiles: tuple[float, ...] = (20, 50, 80)
    protocol: Protocol = DEMO_PROTOCOL


@dataclass
class DemoResult:
    table: Path
    run_dir: Path
    search_dir: Path
    chart: Path
    targets_ms: list[float]
    rows: list[dict] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)


def ensure_data(settings: DemoSettings) -> bool:
    """Whether Fashion-MNIST must be downloaded: found locally (or the Debian package) -> False."""
    try:
        build_loaders("fashion-mnist", settings.data_root, batch_size=settings.batch_size)
        return False
    except DataError as exc:
        if not settings.download:
            log.info("Fashion-MNIST was not found locally (%s); downloading it (about 30 MB).", exc)
        return True


def run_demo(out: str | Path, settings: DemoSettings, on_progress: ProgressCallback | None = None) -> DemoResult:
    """Run the four steps into ``out`` (see the module docstring); each step is announced on the ``hwnas`` logger
    and ``on_progress`` follows the work inside it."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    seconds: dict[str, float] = {}
    download = settings.download or ensure_data(settings)

    # every setting is checked before the first minute of work is spent
    config = RunConfig(space=settings.space, dataset="fashion-mnist", strategy="uniform", width=settings.width,
                       epochs=settings.epochs, batch_size=settings.batch_size, lr=settings.lr, seed=settings.seed,
                       eval_paths=2, bn_batches=settings.bn_batches, data_root=settings.data_root,
                       download=download, resolution=settings.resolution)
    make_strategy("evolution", population=settings.population, generations=settings.generations,
                  parents=settings.parents)
    space = get_space(settings.space, "fashion-mnist", width=settings.width, resolution=settings.resolution)
    device = get_device(settings.device)
    table_path = out / f"{settings.space}-fashion-mnist-{settings.device}.jsonl"
    log.info(f"[1/4] profiling {len(space.all_blocks())} blocks of {settings.space} (width {settings.width}) on "
        f"{settings.device} -> {table_path}")
    start = time.perf_counter()
    table = profile_space(space, device, table_path, protocol=settings.protocol, on_progress=on_progress)
    seconds["profile"] = time.perf_counter() - start

    run_dir = out / "supernet"
    log.info(f"[2/4] training a uniform supernet for {settings.epochs} epochs on Fashion-MNIST "
        f"({settings.resolution}x{settings.resolution}) -> {run_dir}")
    start = time.perf_counter()
    train(config, run_dir, on_progress=on_progress)
    seconds["train"] = time.perf_counter() - start

    rng = random.Random(settings.seed)
    samples = np.array([space.indices(space.sample(rng)) for _ in range(2000)])
    latencies = table.predict_indices(samples)
    targets = [round(float(np.percentile(latencies, p)), 3) for p in settings.percentiles]
    search_dir = out / "search"
    log.info(f"[3/4] evolution at targets {', '.join(f'{t:g} ms' for t in targets)} -> {search_dir}")
    start = time.perf_counter()
    evaluator = open_evaluator(run_dir, space=space, bn_batches=settings.bn_batches,
                               val_batches=settings.val_batches, device="cpu")
    strategy = make_strategy("evolution", population=settings.population, generations=settings.generations,
                             parents=settings.parents)
    results = run_sweep(strategy, targets_ms=targets, space=space, tables=[table], output=search_dir,
                        evaluator=evaluator, seed=settings.seed, force=True, on_progress=on_progress)
    seconds["search"] = time.perf_counter() - start

    chart = out / "pareto.png"
    log.info(f"[4/4] plotting the accuracy-latency chart -> {chart}")
    records = [load_search(r.path) for r in results]
    draw_chart(chart_data(records), chart)
    rows = []
    for target, result in zip(targets, results):
        best = result.best
        rows.append({"target_ms": target, "candidates": len(result.candidates),
                     "feasible": sum(c.feasible for c in result.candidates),
                     "best_accuracy": round(best.accuracy, 2) if best else None,
                     "best_latency_ms": round(best.latency_ms[0], 3) if best else None,
                     "best_macs": best.macs if best else None, "best_arch": str(best.arch) if best else None})
    return DemoResult(table_path, run_dir, search_dir, chart, targets, rows, seconds)

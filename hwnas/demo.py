"""`hwnas demo`: the whole pipeline on Fashion-MNIST in minutes on a laptop CPU, with no network needed.

0. check everything first: the settings, the output directory and the data (the full Fashion-MNIST where
   it is found, else the subset embedded in hwnas), and say which data it is;
1. profile every block of a small FBNet space on a device into a lookup table (a quick protocol that waits
   for bursts of other work at most ``calm_budget_s`` in all);
2. train a supernet with anchored single-path sampling (`hwnas.training.anchored`: uniform, but the layers without
   a residual keep one feature space; anchors alone for the first quarter of the epochs), a fixed number of
   steps whatever the data set;
3. fit an accuracy predictor on ``predictor_samples`` random architectures scored by the supernet (BN
   recalibrated, about 1 000 validation images each), then evolution at three latency targets (the 20th,
   50th and 80th percentile of the table's latencies of random architectures) scored by the predictor,
   thousands of candidates in seconds; each target's ``rescore`` best are scored again by the supernet on
   the whole validation split and the best of those is returned (Once-for-All's recipe). The sweep shares
   its candidates, so a looser target's best is never worse than a tighter one's;
4. measure each target's best architecture on the device, draw the Pareto chart, and summarise: each
   target's best with its standard error, how far it leads its runners-up, its predicted and measured
   latency.

Every step writes into one directory with the same files the individual commands write, so each can be
inspected or rerun by hand (the summary prints the equivalent commands). What the demo trades for speed:
a width-0.25 space at 16x16 inputs, ten short epochs (about 90 000 images), a predictor fitted on a hundred
architectures, a table protocol of 5 rounds of 10 ms blocks, and a validation split of 1 000 images (the
embedded subset) to 6 000 (the full set) for the final choice, whose standard error the summary reports.
"""

from __future__ import annotations

import logging
import os
import random
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from hwnas.data import Loaders, build_loaders
from hwnas.devices import Device, get_device
from hwnas.errors import ConfigError
from hwnas.profiler.build import profile_space
from hwnas.timing.protocol import Protocol
from hwnas.profiler.validate import measure_archs
from hwnas.progress import ProgressCallback
from hwnas.judge.fit import FEWEST, fit_predictor
from hwnas.outputs import check_output_dir
from hwnas.search import STRATEGIES, load_search, run_sweep
from hwnas.search.predictor import PredictorEvaluator
from hwnas.search.runner import Rescore
from hwnas.search.pareto import chart_data
from hwnas.search.plot import draw_chart
from hwnas.search.summary import summary_row
from hwnas.space import SearchSpace, get_space
from hwnas.threads import configure
from hwnas.supernet.evaluator import Evaluator
from hwnas.training import RunConfig, open_evaluator, train
from hwnas.training.trained import data_settings

log = logging.getLogger(__name__)

#: a quicker protocol than the default: the demo's table has to be built in about a minute, and a busy
#: machine must not make it wait for calm longer than 20 s in all
DEMO_PROTOCOL = Protocol(warmup_s=0.05, min_block_s=0.01, rounds=5, calm_wait_s=5.0, calm_budget_s=20.0)


@dataclass
class DemoSettings:
    space: str = "fbnet"
    width: float = 0.25
    resolution: int = 16  # Fashion-MNIST's 28x28 resized: 2x faster training, the demo fits in 10 minutes
    device: str = "ort-mobile"
    epochs: int = 10
    #: training steps per epoch: the same training on the full data set and on the embedded subset
    steps_per_epoch: int = 70
    batch_size: int = 128
    lr: float = 0.1
    population: int = 256
    generations: int = 10
    parents: int = 32
    bn_batches: int = 4
    val_batches: int = 8
    #: random architectures scored by the supernet to fit the predictor on
    predictor_samples: int = 96
    #: each target's best candidates by the predictor scored again by the supernet (whole validation split)
    rescore: int = 5
    seed: int = 0
    data_root: str | None = None
    download: bool = False
    threads: int | None = None  # None: as many as there are idle cores (`hwnas.threads`)
    percentiles: tuple[float, ...] = (20, 50, 80)
    protocol: Protocol = DEMO_PROTOCOL


@dataclass
class DemoResult:
    table: Path
    run_dir: Path
    predictor: Path
    search_dir: Path
    chart: Path
    targets_ms: list[float]
    dataset: str
    rows: list[dict] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)


@dataclass
class _Plan:
    """Everything `check` found usable, before any work."""

    config: RunConfig
    space: SearchSpace
    device: Device
    loaders: Loaders


def check(out: Path, settings: DemoSettings) -> _Plan:
    """Refuse bad settings, an unusable output directory or missing data before the first step's work; say
    which data the demo trains on."""
    check_output_dir(out, "the demo's output", "demo")  # a directory, not another command's results
    STRATEGIES.create("evolution", population=settings.population, generations=settings.generations,
                  parents=min(settings.parents, settings.population))
    Rescore(_NoEvaluator(), settings.rescore)
    if settings.predictor_samples < FEWEST:
        raise ConfigError(f"the demo's predictor is fitted on at least {FEWEST} architectures, but got "
                          f"predictor_samples={settings.predictor_samples}")
    if settings.threads is not None and settings.threads < 1:
        raise ConfigError(f"threads must be >= 1, but got threads={settings.threads}")
    config = RunConfig(space=settings.space, dataset="fashion-mnist", strategy="anchored",
                       strategy_settings={"anchor_epochs": settings.epochs // 4}, width=settings.width,
                       epochs=settings.epochs, steps_per_epoch=settings.steps_per_epoch,
                       batch_size=settings.batch_size, lr=settings.lr, seed=settings.seed, eval_paths=2,
                       bn_batches=settings.bn_batches, data_root=settings.data_root, download=settings.download,
                       resolution=settings.resolution)
    space = get_space(settings.space, "fashion-mnist", width=settings.width, resolution=settings.resolution)
    device = get_device(settings.device)
    _check_writable(out)
    loaders = build_loaders(config.dataset, **config.loader_options())
    out.mkdir(parents=True, exist_ok=True)
    training_images = len(loaders.train_indices) + len(loaders.val_indices)
    log.info("data: %s, %d training images (%d held out for validation) and %d test images",
             loaders.dataset, training_images, len(loaders.val_indices), len(loaders.test.dataset))
    # train on the data found now, whatever is installed later
    return _Plan(RunConfig(**{**config.to_dict(), "dataset": loaders.dataset}), space, device, loaders)


def _check_writable(out: Path) -> None:
    """Create (and remove) a directory where ``out`` or its nearest existing parent is: a file system that
    refuses it is told in one line before any work, and nothing is left behind."""
    where = next((p for p in (out, *out.parents) if p.is_dir()), Path("."))
    try:
        os.rmdir(tempfile.mkdtemp(prefix=".hwnas-write-test-", dir=where))
    except OSError as exc:
        raise ConfigError(f"the demo's output directory must be writable, but {out} is not ({exc})") from None


def run_demo(out: str | Path, settings: DemoSettings, on_progress: ProgressCallback | None = None) -> DemoResult:
    """Run the steps into ``out`` (see the module docstring); each step is announced on the ``hwnas`` logger
    and ``on_progress`` follows the work inside it."""
    out = Path(out)
    plan = check(out, settings)
    space, seconds = plan.space, {}

    table_path = out / f"{settings.space}-fashion-mnist-{settings.device}.jsonl"
    log.info("[1/4] profiling %d blocks of %s (width %g) on %s -> %s", len(space.all_blocks()), settings.space,
             settings.width, settings.device, table_path)
    start = time.perf_counter()
    table = profile_space(space, plan.device, table_path, protocol=settings.protocol, on_progress=on_progress)
    seconds["profile"] = time.perf_counter() - start

    run_dir = out / "supernet"
    start = time.perf_counter()
    threads = configure(settings.threads)
    log.info("[2/4] training a supernet (anchored sampling) for %d epochs of %d steps on %s (%dx%d, %d thread(s)) -> %s",
             settings.epochs, settings.steps_per_epoch, plan.loaders.dataset, settings.resolution, settings.resolution,
             threads, run_dir)
    train(plan.config, run_dir, on_progress=on_progress)
    seconds["train"] = time.perf_counter() - start

    rng = random.Random(settings.seed)
    samples = np.array([space.indices(space.sample(rng)) for _ in range(2000)])
    latencies = table.predict_indices(samples)
    targets = [round(float(np.percentile(latencies, p)), 3) for p in settings.percentiles]
    search_dir = out / "search"
    start = time.perf_counter()
    threads = configure(settings.threads)
    predictor_path = out / "predictor.json"
    log.info("[3/4] a predictor fitted on %d architectures scored by the supernet -> %s; evolution at targets %s "
             "scored by it, each target's %d best re-scored by the supernet (%d thread(s)) -> %s",
             settings.predictor_samples, predictor_path, ", ".join(f"{t:g} ms" for t in targets), settings.rescore,
             threads, search_dir)
    evaluator = open_evaluator(run_dir, space=space, bn_batches=settings.bn_batches,
                               val_batches=settings.val_batches, device="cpu")
    fitted = fit_predictor(evaluator, data_settings(plan.config), predictor_path, samples=settings.predictor_samples,
                           seed=settings.seed, on_progress=on_progress)
    seconds["predictor"] = time.perf_counter() - start
    start = time.perf_counter()
    rescorer = open_evaluator(run_dir, space=space, bn_batches=settings.bn_batches, device="cpu")
    strategy = STRATEGIES.create("evolution", population=settings.population, generations=settings.generations,
                             parents=min(settings.parents, settings.population))
    results = run_sweep(strategy, targets_ms=targets, space=space, tables=[table], output=search_dir,
                        evaluator=PredictorEvaluator(fitted.predictor), rescore=Rescore(rescorer, settings.rescore),
                        seed=settings.seed, force=True, on_progress=on_progress)
    seconds["search"] = time.perf_counter() - start

    chart = out / "pareto.png"
    log.info("[4/4] measuring each target's best architecture on %s and plotting -> %s", settings.device, chart)
    start = time.perf_counter()
    bests = list(dict.fromkeys(r.best.arch for r in results if r.best is not None))  # targets may share a best
    measured = dict(zip(bests, measure_archs(table, plan.device, bests, settings.protocol, on_progress=on_progress)))
    draw_chart(chart_data([load_search(r.path) for r in results]), chart)
    seconds["measure+plot"] = time.perf_counter() - start
    rows, notes = [], [fitted.noise]
    samples_seen = rescorer.describe()["val_samples"]
    for result in results:
        row = summary_row(result)
        label = result.labels[0]
        row["predicted_ms"] = row.pop(f"latency_ms[{label}]", None)
        row["measured_ms"] = round(float(measured[result.best.arch]), 4) if result.best is not None else None
        rows.append({k: row.get(k) for k in ("target_ms", "candidates", "best_accuracy", "se", "lead", "ahead_of",
                                             "predicted_ms", "measured_ms", "macs", "arch")})
        if row.get("lead") is not None and row.get("se") is not None and row["lead"] < 2 * row["se"]:
            notes.append(f"{result.path.name}: the best leads the runner-up by {row['lead']:.2f} points, within two "
                         f"standard errors ({row['se']:.2f} points over {samples_seen} validation images): the "
                         f"ranking at the top is noise at this size of validation split")
    notes += shared_best_notes([(result.path.name, result.best.arch if result.best is not None else None)
                                for result in results])
    return DemoResult(table_path, run_dir, predictor_path, search_dir, chart, targets, plan.loaders.dataset, rows, notes,
                      seconds)


def shared_best_notes(bests: list[tuple[str, object]]) -> list[str]:
    """A sentence for each target (name, best architecture; in ascending target order) whose best is a smaller
    target's: its extra latency budget bought nothing by the estimate the search used."""
    notes, first = [], {}
    for name, arch in bests:
        if arch is None:
            continue
        if arch in first:
            notes.append(f"{name}: returned the same architecture as {first[arch]}: no slower candidate scored "
                         f"higher, so by this supernet's estimate the extra latency budget buys no accuracy")
        else:
            first[arch] = name
    return notes


class _NoEvaluator(Evaluator):
    """Stands for the supernet while the settings are checked, before there is one."""

    def _evaluate(self, arch):  # pragma: no cover - never called
        raise NotImplementedError

    def describe(self) -> dict:
        return {}

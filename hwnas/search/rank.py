"""How well a supernet ranks architectures: its accuracy estimates against the same architectures trained
stand-alone (`hwnas rank`).

K architectures are chosen stratified over the supernet's accuracy range (every ``1/(K-1)``-th quantile of
a sample of random architectures, scored with BN recalibrated), or taken from search or ranking directories
(the union of their architectures), spread over their accuracy range. Each is trained stand-alone with one
recipe (`hwnas.search.standalone`) and scored on the test split. The agreement is Kendall tau, Spearman rho
and the top-k overlap (the share of the k best stand-alone that are among the supernet's k best,
k = max(2, K // 4)), against the supernet's accuracy with
BN recalibrated and with the statistics it inherited, each with a bootstrap 95 % interval (architectures
resampled with replacement); and the same of two baselines a supernet should beat, the architectures' params
and MACs (a bigger network is often a better one).
"""

from __future__ import annotations

import math
import random
from contextlib import nullcontext
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import kendalltau, spearmanr

from hwnas import __version__
from hwnas.errors import CheckpointError, ConfigError
from hwnas.files import dump_json, write_atomic
from hwnas.outputs import check_output_dir, dir_lock
from hwnas.progress import ProgressCallback
from hwnas.readers import read_json
from hwnas.search.constraints import check_table
from hwnas.search.results import latency_column, load_search, table_labels
from hwnas.search.standalone import Recipe, job, saved_plan, share, train_standalone
from hwnas.space import Architecture, SearchSpace
from hwnas.space.cost import arch_cost
from hwnas.supernet.evaluator import SupernetEvaluator
from hwnas.tables import LookupTable

BOOTSTRAP = 2000


def stratified(evaluator: SupernetEvaluator, k: int, *, pool: int | None = None, seed: int = 0) -> list[Architecture]:
    """``k`` distinct architectures spread evenly over the supernet's (recalibrated) accuracy range of a sample
    of ``pool`` (default ``max(8k, 64)``) random ones."""
    if k < 2:
        raise ConfigError(f"ranking needs at least 2 architectures, but got archs={k}")
    space = evaluator.space
    rng = random.Random(seed)
    sample = list(dict.fromkeys(space.sample(rng) for _ in range(pool or max(8 * k, 64))))
    if len(sample) < k:
        raise ConfigError(f"space {space.name!r} holds {len(sample)} distinct architectures, fewer than archs={k}")
    ordered = sorted(sample, key=lambda arch: (evaluator(arch), str(arch)))
    positions = sorted({round(i * (len(ordered) - 1) / (k - 1)) for i in range(k)})
    return [ordered[p] for p in positions]


def spread(archs: Sequence[Architecture], accuracies: Sequence[float], k: int) -> list[Architecture]:
    """``k`` of ``archs`` (from a search) spread evenly over their accuracy range."""
    if k < 2:
        raise ConfigError(f"ranking needs at least 2 architectures, but got archs={k}")
    unique = list(dict.fromkeys(zip(map(str, archs), accuracies)))
    if len(unique) < k:
        raise ConfigError(f"--archs-from holds {len(unique)} distinct architectures, fewer than archs={k}")
    ordered = sorted(unique, key=lambda pair: (pair[1], pair[0]))
    positions = sorted({round(i * (len(ordered) - 1) / (k - 1)) for i in range(k)})
    return [Architecture.parse(ordered[p][0]) for p in positions]


def top_k_overlap(truth: np.ndarray, estimate: np.ndarray, k: int) -> float:
    """The share of the ``k`` best by ``truth`` that are among the ``k`` best by ``estimate``."""
    best = set(np.argsort(-truth, kind="stable")[:k].tolist())
    return len(best & set(np.argsort(-estimate, kind="stable")[:k].tolist())) / k


@dataclass(frozen=True)
class Agreement:
    """One statistic of stand-alone against supernet accuracy, with its bootstrap 95 % interval."""

    value: float
    low: float
    high: float

    def row(self, name: str) -> dict:
        return {f"{name}": round(self.value, 4), f"{name}_low": round(self.low, 4), f"{name}_high": round(self.high, 4)}


def _statistics(truth: np.ndarray, estimate: np.ndarray, k: int) -> tuple[float, float, float]:
    if np.ptp(truth) == 0 or np.ptp(estimate) == 0:
        return math.nan, math.nan, top_k_overlap(truth, estimate, k)
    return (float(kendalltau(truth, estimate).statistic), float(spearmanr(truth, estimate).statistic),
            top_k_overlap(truth, estimate, k))


def agreement(truth: Sequence[float], estimate: Sequence[float], *, seed: int = 0,
              samples: int = BOOTSTRAP) -> dict[str, Agreement]:
    """Kendall tau, Spearman rho and top-k overlap of ``estimate`` against ``truth``, each with the 2.5 and
    97.5 percentiles over ``samples`` bootstrap resamples (resamples whose values are all tied are skipped)."""
    truth_a, estimate_a = np.asarray(truth, float), np.asarray(estimate, float)
    n = len(truth_a)
    k = max(2, n // 4)
    point = _statistics(truth_a, estimate_a, k)
    rng = np.random.default_rng(seed)
    draws = np.array([_statistics(truth_a[i], estimate_a[i], k) for i in rng.integers(0, n, size=(samples, n))])
    out = {}
    for column, name in enumerate(("kendall_tau", "spearman_rho", "top_k_overlap")):
        values = draws[:, column][~np.isnan(draws[:, column])]
        low, high = (np.percentile(values, [2.5, 97.5]) if len(values) else (math.nan, math.nan))
        out[name] = Agreement(point[column], float(low), float(high))
    return out


#: fewer architectures than this give no verdict: bootstrap resamples of so few repeat most of them, and the
#: percentile interval is then far too narrow
FEWEST_FOR_VERDICT = 8


def verdict(stats: dict[str, Agreement], n: int, baselines: dict[str, dict[str, Agreement]] | None = None) -> str:
    """What the Kendall tau interval of ``n`` architectures allows one to say, and whether a baseline (an
    architecture's size: ``baselines`` maps a name to its agreement) ranks them as well as the supernet."""
    said = _verdict(stats, n)
    tau = stats["kendall_tau"].value
    if n < FEWEST_FOR_VERDICT or math.isnan(tau):
        return said
    rivals = [(name, b["kendall_tau"].value) for name, b in (baselines or {}).items()
              if not math.isnan(b["kendall_tau"].value) and b["kendall_tau"].value >= tau]
    if rivals:
        name, value = max(rivals, key=lambda pair: pair[1])
        said += f"; beware: counting {name} alone ranks them as well or better (tau {value:.2f})"
    return said


def _verdict(stats: dict[str, Agreement], n: int) -> str:
    tau = stats["kendall_tau"]
    if n < FEWEST_FOR_VERDICT:
        return (f"no conclusion: {n} architectures are too few for a bootstrap interval to mean much (tau "
                f"{tau.value:.2f}); rank {FEWEST_FOR_VERDICT} or more")
    if math.isnan(tau.value):
        return "no ranking: the accuracies are all tied"
    if tau.low > 0:
        return f"the supernet ranks architectures better than chance (tau {tau.value:.2f}, 95 % interval above 0)"
    if tau.high < 0:
        return f"the supernet ranks architectures worse than chance (tau {tau.value:.2f}, 95 % interval below 0)"
    return (f"no conclusion: the 95 % interval of tau [{tau.low:.2f}, {tau.high:.2f}] includes 0; more architectures "
            f"or longer stand-alone training would narrow it")


SELECTION, RANK_CSV, RANK_JSON, RUNS = "selection.json", "rank.csv", "rank.json", "runs"
ESTIMATES = {"recalibrated_bn": "supernet_acc_recalibrated_bn", "inherited_bn": "supernet_acc_inherited_bn"}
#: what a supernet should rank better than: a bigger network is often a better one (the size baseline of
#: zero-cost proxy studies), and a supernet that ranks no better than its MACs or params adds nothing
BASELINES = ("params", "macs")


@dataclass
class RankResult:
    """What `rank` found: one row per architecture (as in rank.csv), the agreement of stand-alone accuracy with
    each supernet estimate (``recalibrated_bn``, ``inherited_bn``) and with each size baseline (``params``,
    ``macs``), and what the interval allows one to say."""

    path: Path
    rows: pd.DataFrame
    agreement: dict[str, dict[str, Agreement]]
    verdict: str
    top_k: int
    config: dict = field(default_factory=dict)
    baselines: dict[str, dict[str, Agreement]] = field(default_factory=dict)

    def summary_rows(self) -> list[dict]:
        named = [*((f"supernet, BN {e.removesuffix('_bn')}", s) for e, s in self.agreement.items()),
                 *((f"{b} (baseline)", s) for b, s in self.baselines.items())]
        return [{"ranked_by": label, **{k: v for name, a in stats.items() for k, v in a.row(name).items()}}
                for label, stats in named]


def plain(stats: dict[str, dict[str, Agreement]]) -> dict[str, dict[str, dict]]:
    """Agreements by estimate and statistic as plain dicts (value, low, high): rank.json's and the chart's form."""
    return {estimate: {name: vars(a) for name, a in s.items()} for estimate, s in stats.items()}


def _candidates(space: SearchSpace, sources: Sequence[Path]) -> pd.DataFrame:
    """The union of the architectures of the searches or rankings ``sources`` (each once, with the accuracy
    of the first source that holds it)."""
    frame = pd.concat([_candidates_of(space, source) for source in sources], ignore_index=True)
    return frame.assign(arch=frame["arch"].astype(str)).drop_duplicates("arch", ignore_index=True)


def _candidates_of(space: SearchSpace, archs_from: Path) -> pd.DataFrame:
    """The architectures (``arch``) and accuracies (``accuracy``) of the search or ranking in ``archs_from``,
    which must be of ``space``; a ranking's accuracy is its supernet's, BN recalibrated."""
    if (archs_from / SELECTION).exists():
        saved = read_json(archs_from / SELECTION, "a ranking's selection.json", CheckpointError,
                          fields={"config": dict, "plan": list[dict]})
        described = saved["config"].get("space")
        frame = pd.DataFrame([{"arch": e.get("arch"), "accuracy": e.get(ESTIMATES["recalibrated_bn"])}
                              for e in saved["plan"]])
    else:
        record = load_search(archs_from)
        described, frame = record.config["space"], record.candidates
    if described != space.describe():
        theirs, mine = described if isinstance(described, dict) else {}, space.describe()
        diffs = [f"{key} {theirs.get(key)!r} != {mine.get(key)!r}" for key in sorted(set(theirs) | set(mine))
                 if theirs.get(key) != mine.get(key)]
        raise ConfigError(f"--archs-from must be a search or ranking of the supernet's space, but {archs_from} "
                          f"differs: {'; '.join(diffs[:3])} (theirs != supernet)")
    return frame


def _select(evaluator: SupernetEvaluator, k: int, seed: int, candidates: pd.DataFrame | None) -> list[dict]:
    """The chosen architectures with both supernet estimates (%), in the order they are trained."""
    space = evaluator.space
    if candidates is None:
        archs = stratified(evaluator, k, seed=seed)
    else:
        archs = spread([Architecture.parse(a) for a in candidates["arch"]], candidates["accuracy"].tolist(), k)
    return [{"arch": str(space.validate(arch)), ESTIMATES["inherited_bn"]: evaluator.accuracy(arch, recalibrate=False),
             ESTIMATES["recalibrated_bn"]: evaluator.accuracy(arch)} for arch in archs]


def rank_supernet(evaluator: SupernetEvaluator, data: dict[str, Any], recipe: Recipe, output: str | Path, *,
                  archs: int, seed: int = 0, archs_from: str | Path | Sequence[str | Path] | None = None, seeds: int = 1,
                  pool_seed: int | None = None, reuse: Sequence[str | Path] = (), tables: Sequence[LookupTable] = (),
                  on_progress: ProgressCallback | None = None) -> RankResult | None:
    """Rank ``archs`` architectures of the supernet ``evaluator`` scores (see the module docstring) in
    ``output``: ``selection.json`` (the architectures and their supernet accuracies, chosen once), ``runs/``
    (one resumable stand-alone training each), then ``rank.csv`` and ``rank.json``. Run again, it resumes:
    finished trainings are never redone. ``seeds`` > 1 trains each architecture that many times (seeds
    ``recipe.seed``, + 1, ...) and ranks by the mean; ``reuse`` names other rankings or reports whose finished
    trainings (same recipe, seed and data) count here too, as those of the rankings ``archs_from`` always do.
    ``archs_from`` is one search or ranking directory or several: the ``archs`` are spread over the union of
    their architectures (all of them when ``archs`` is its size), so that rankings of a few architectures
    each add up to one of more. ``pool_seed`` (default ``seed``) seeds the random sample the architectures are
    otherwise chosen from: another pool seed, other architectures, for a ranking to add up with this one.
    Under torchrun, every process calls this and trains its share; the result is returned on rank 0 (None
    elsewhere)."""
    if archs < 2:
        raise ConfigError(f"ranking needs at least 2 architectures, but got archs={archs}")
    space = evaluator.space
    for table in tables:
        check_table(table, space)
    labels = table_labels(tables)
    sources = [] if archs_from is None else [Path(archs_from)] if isinstance(archs_from, (str, Path)) else \
        [Path(a) for a in archs_from]
    if pool_seed is not None and sources:
        raise ConfigError(f"--pool-seed seeds the random sample architectures are chosen from, but --archs-from takes "
                          f"them from {', '.join(map(str, sources))}; give one or the other")
    candidates = _candidates(space, sources) if sources else None
    if candidates is not None:
        spread([Architecture.parse(a) for a in candidates["arch"]], candidates["accuracy"].tolist(), archs)
    path = check_output_dir(output, "a ranking directory")
    config = {"supernet": evaluator.describe().get("run_dir"), "space": space.describe(), "data": data,
              "recipe": recipe.settings(), "archs": archs, "seed": seed,
              # one source is recorded as a string (as before several were allowed), several as a list
              "archs_from": None if not sources else str(sources[0].resolve()) if len(sources) == 1
              else [str(source.resolve()) for source in sources],
              **({"seeds": seeds} if seeds > 1 else {}),  # absent: one training each
              **({"pool_seed": pool_seed} if pool_seed is not None else {})}  # absent: seed
    recipe.run_config(space.name, str(space.sample(random.Random(0))), data)  # bad settings: before any work
    with job() as (rank, world):
        if rank == 0:
            path.mkdir(parents=True, exist_ok=True)
        # one ranking per directory: rank 0 holds the lock throughout (the others only write their own runs)
        with dir_lock(path, "ranking directory") if rank == 0 else nullcontext():
            chosen = None
            if rank == 0:
                pool = seed if pool_seed is None else pool_seed
                chosen = saved_plan(path / SELECTION, "hwnas-rank-selection", config,
                                    lambda: _select(evaluator, archs, pool, candidates))
            chosen = share(world, chosen)
            # the trainings of the rankings the architectures came from count here too (same recipe and data)
            folders = [Path(f) / RUNS for f in [*sources, *reuse]]
            trained = train_standalone([(space.name, c["arch"]) for c in chosen], recipe, data, path / RUNS,
                                       seeds=seeds, on_progress=on_progress, rank=rank, world=world, reuse=folders)
            return _finish(path, space, chosen, trained, tables, labels, config) if rank == 0 else None


def _finish(path: Path, space: SearchSpace, chosen: list[dict], trained: list, tables: Sequence[LookupTable],
            labels: Sequence[str], config: dict) -> RankResult:
    rows = []
    for entry, done in zip(chosen, trained):
        arch = Architecture.parse(entry["arch"])
        cost = arch_cost(space, arch)
        row = {**entry, "standalone_test_acc": done.test_acc, "standalone_val_acc": done.val_acc}
        if len(done.test_accs) > 1:
            row["standalone_test_acc_sd"] = done.test_acc_sd
        row.update({latency_column(label): table.predict(arch).latency_ms for label, table in zip(labels, tables)})
        row.update({"macs": cost.macs, "params": cost.params, "run": str(done.run_dir.relative_to(path))})
        rows.append(row)
    frame = pd.DataFrame(rows)
    truth = frame["standalone_test_acc"].to_numpy(float)
    stats = {estimate: agreement(truth, frame[column].to_numpy(float), seed=config["seed"])
             for estimate, column in ESTIMATES.items()}
    baselines = {name: agreement(truth, frame[name].to_numpy(float), seed=config["seed"]) for name in BASELINES}
    said = verdict(stats["recalibrated_bn"], len(frame), baselines)
    result = RankResult(path, frame, stats, said, max(2, len(frame) // 4), config, baselines)
    write_atomic(path / RANK_CSV, frame.to_csv(index=False))
    write_atomic(path / RANK_JSON, dump_json({
        "kind": "hwnas-rank", "version": 1, "hwnas": __version__, **config, "top_k": result.top_k,
        "bootstrap": BOOTSTRAP, "tables": list(labels), "verdict": result.verdict,
        "agreement": plain(stats), "baselines": plain(baselines)},
        nan_as_null=True, indent=2) + "\n")
    return result

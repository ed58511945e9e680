"""How well a supernet (and an accuracy predictor) ranks architectures: their accuracy estimates against the same
architectures trained stand-alone (`hwnas rank`).

Which K architectures (`Sample`, recorded in selection.json and rank.json and printed):

- ``random`` (the default): drawn uniformly from the space, the population a search explores;
- ``spread``: spread evenly over the supernet's accuracy range of a random pool (it flatters a ranking: the
  architectures differ more than random ones do);
- ``target``: random architectures whose latency lies within ``band`` below a latency target on a table,
  where a search under that target decides;
- or those of searches and rankings (``archs_from``), all of them or a random (``spread``: a spread) choice.

Each is trained stand-alone with one recipe (`hwnas.judge.standalone`) and scored on the test split. The
estimates are those a search would use: the supernet's accuracy with the evaluator's own validation images and
BN batches (so `hwnas search`'s ``--bn-batches`` and ``--val-batches`` are ranked as they search), with BN
recalibrated and as inherited, a predictor's when one is given, and two size baselines a supernet should beat,
params and MACs (a bigger network is often a better one). Each gets Kendall tau, Spearman rho and top-k overlap
with bootstrap intervals, and the estimators are compared pairwise by the paired interval of their difference
(`hwnas.judge.agreement`). With two or more seeds, `reliability` says how far the stand-alone truth itself can be
trusted: the Kendall tau a perfect estimator would reach against it, the ceiling of every estimate here.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from hwnas import __version__
from hwnas.errors import ConfigError
from hwnas.files import dump_json, write_atomic
from hwnas.judge.agreement import (BOOTSTRAP, Agreement, Comparison, Reliability, agreement, compare, reliability,
                                   top_k_overlap)
from hwnas.judge.selection import SAMPLES, in_band, random_sample, random_subset, spread, stratified
from hwnas.judge.sources import candidates
from hwnas.judge.standalone import Recipe, job, saved_plan, share, train_standalone
from hwnas.outputs import check_output_dir, dir_lock
from hwnas.progress import ProgressCallback
from hwnas.search.constraints import check_table
from hwnas.search.predictor import Predictor
from hwnas.search.results import latency_column, table_labels
from hwnas.space import Architecture, SearchSpace
from hwnas.space.cost import arch_cost
from hwnas.supernet.evaluator import SupernetEvaluator
from hwnas.tables import LookupTable

__all__ = ["Agreement", "RankResult", "Sample", "agreement", "rank_supernet", "spread", "stratified",
           "top_k_overlap", "verdict"]

SELECTION, RANK_CSV, RANK_JSON, RUNS = "selection.json", "rank.csv", "rank.json", "runs"
ESTIMATES = {"recalibrated_bn": "supernet_acc_recalibrated_bn", "inherited_bn": "supernet_acc_inherited_bn"}
PREDICTED = "predicted_acc"
#: what a supernet should rank better than: a bigger network is often a better one (the size baseline of
#: zero-cost proxy studies), and a supernet that ranks no better than its MACs or params adds nothing
BASELINES = ("params", "macs")
#: fewer architectures than this give no verdict: bootstrap resamples of so few repeat most of them, and the
#: percentile interval is then far too narrow
FEWEST_FOR_VERDICT = 8


@dataclass(frozen=True)
class Sample:
    """How the architectures are chosen (see the module docstring): ``kind`` one of `SAMPLES`; ``target_ms`` and
    ``band`` (a fraction) for ``target``, on the first table given to `rank_supernet`."""

    kind: str = "random"
    target_ms: float | None = None
    band: float = 0.05

    def __post_init__(self) -> None:
        if self.kind not in SAMPLES:
            raise ConfigError(f"a sample must be one of {', '.join(SAMPLES)}, but got {self.kind!r}")
        if (self.kind == "target") != (self.target_ms is not None):
            raise ConfigError("--sample target needs --target-latency (and only it does), but got "
                              f"sample={self.kind!r}, target latency {self.target_ms}")
        if not 0 < self.band < 1:
            raise ConfigError(f"the latency band must lie in (0, 1), but got band={self.band}")

    def describe(self) -> str:
        if self.kind == "target":
            return (f"random architectures within {100 * self.band:g} % below the target {self.target_ms:g} ms "
                    f"(where a search under it decides)")
        return {"random": "drawn uniformly from the space",
                "spread": "spread over the supernet's accuracy range"}[self.kind]


def verdict(stats: dict[str, Agreement], n: int, baselines: dict[str, dict[str, Agreement]] | None = None,
            who: str = "the supernet", differences: dict[str, Agreement] | None = None) -> str:
    """What the Kendall tau interval of ``n`` architectures allows one to say of ``who``, and how it compares with
    a baseline (an architecture's size: ``baselines`` maps a name to its agreement). ``differences`` maps a
    baseline's name to the paired interval of tau(who) - tau(baseline) (same bootstrap resamples); with it, "as
    well" and "better" are told apart by that interval rather than by two point estimates."""
    tau = stats["kendall_tau"]
    if n < FEWEST_FOR_VERDICT:
        return (f"no conclusion: {n} architectures are too few for a bootstrap interval to mean much (tau "
                f"{tau.value:.2f}); rank {FEWEST_FOR_VERDICT} or more")
    if math.isnan(tau.value):
        return "no ranking: the accuracies are all tied"
    if tau.low > 0:
        said = f"{who} ranks architectures better than chance (tau {tau.value:.2f}, 95 % interval above 0)"
    elif tau.high < 0:
        said = f"{who} ranks architectures worse than chance (tau {tau.value:.2f}, 95 % interval below 0)"
    else:
        said = (f"no conclusion on {who}: the 95 % interval of tau [{tau.low:.2f}, {tau.high:.2f}] includes 0; more "
                f"architectures or longer stand-alone training would narrow it")
    differences = differences or {}
    rivals = [(name, b["kendall_tau"].value) for name, b in (baselines or {}).items()
              if not math.isnan(b["kendall_tau"].value) and b["kendall_tau"].value >= tau.value]
    if rivals:
        name, value = max(rivals, key=lambda pair: pair[1])
        diff = differences.get(name)
        if diff is None:
            said += f"; beware: counting {name} alone ranks them as well or better (tau {value:.2f})"
        else:
            how = "better" if diff.high < 0 else "as well (the interval of the difference includes 0)"
            said += (f"; beware: counting {name} alone ranks them {how}: tau {value:.2f}, {who} - {name} "
                     f"{diff.value:+.2f} [{diff.low:+.2f}, {diff.high:+.2f}]")
    elif differences and all(d.low > 0 for d in differences.values()):
        said += (f", and better than counting {' or '.join(differences)} (every paired interval of the difference "
                 f"above 0)")
    return said


@dataclass
class RankResult:
    """What `rank` found: one row per architecture (as in rank.csv), the `Comparison` of every estimate against
    stand-alone accuracy (``recalibrated_bn``, ``inherited_bn``, ``predictor`` when given, ``params``,
    ``macs``) with the paired differences, and what the supernet's interval allows one to say."""

    path: Path
    rows: pd.DataFrame
    comparison: Comparison
    verdict: str
    config: dict = field(default_factory=dict)
    truth: Reliability | None = None

    @property
    def top_k(self) -> int:
        return self.comparison.k

    @property
    def agreement(self) -> dict[str, dict[str, Agreement]]:
        """The supernet's estimates (BN recalibrated and inherited) and the predictor's."""
        return {k: v for k, v in self.comparison.agreements.items() if k not in BASELINES}

    @property
    def baselines(self) -> dict[str, dict[str, Agreement]]:
        return {k: v for k, v in self.comparison.agreements.items() if k in BASELINES}

    def summary_rows(self) -> list[dict]:
        def label(name: str) -> str:
            return {"predictor": "predictor"}.get(name, f"{name} (baseline)" if name in BASELINES else
                                                  f"supernet, BN {name.removesuffix('_bn')}")

        return [{"ranked_by": label(name), **{k: v for stat, a in stats.items() for k, v in a.row(stat).items()}}
                for name, stats in self.comparison.agreements.items()]


def plain(stats: dict[str, dict[str, Agreement]]) -> dict[str, dict[str, dict]]:
    """Agreements by estimate and statistic as plain dicts (value, low, high): rank.json's and the chart's form."""
    return {estimate: {name: vars(a) for name, a in s.items()} for estimate, s in stats.items()}


def _select(evaluator: SupernetEvaluator, k: int, seed: int, sample: Sample, found: pd.DataFrame | None,
            table: LookupTable | None) -> list[dict]:
    """The chosen architectures with both supernet estimates (%), in the order they are trained."""
    space = evaluator.space
    if found is not None:
        archs = [Architecture.parse(a) for a in found["arch"]]
        archs = spread(archs, found["accuracy"].tolist(), k) if sample.kind == "spread" else random_subset(archs, k, seed)
    elif sample.kind == "spread":
        archs = stratified(evaluator, space, k, seed=seed)
    elif sample.kind == "target":
        assert table is not None and sample.target_ms is not None
        archs = in_band(space, table, sample.target_ms * (1 - sample.band), sample.target_ms, k, seed)
    else:
        archs = random_sample(space, k, seed)
    return [{"arch": str(space.validate(arch)), ESTIMATES["inherited_bn"]: evaluator.accuracy(arch, recalibrate=False),
             ESTIMATES["recalibrated_bn"]: evaluator.accuracy(arch)} for arch in archs]


def rank_supernet(evaluator: SupernetEvaluator, data: dict[str, Any], recipe: Recipe, output: str | Path, *,
                  archs: int, seed: int = 0, sample: Sample = Sample(),
                  archs_from: str | Path | Sequence[str | Path] | None = None, seeds: int = 1,
                  pool_seed: int | None = None, reuse: Sequence[str | Path] = (), tables: Sequence[LookupTable] = (),
                  predictor: Predictor | None = None, on_progress: ProgressCallback | None = None) -> RankResult | None:
    """Rank ``archs`` architectures chosen as ``sample`` says (see the module docstring) in ``output``:
    ``selection.json`` (the architectures and their supernet accuracies, chosen once), ``runs/`` (one resumable
    stand-alone training each), then ``rank.csv`` and ``rank.json``. Run again, it resumes: finished trainings
    are never redone. ``seeds`` > 1 trains each architecture that many times (seeds ``recipe.seed``, + 1, ...)
    and ranks by the mean; ``reuse`` names other rankings or reports whose finished trainings (same recipe, seed
    and data) count here too, as those of the rankings ``archs_from`` always do. ``archs_from`` is one search or
    ranking directory or several, whose union the architectures are chosen from. ``pool_seed`` (default
    ``seed``) seeds the random choice: another pool seed, other architectures, for a ranking to add up with this
    one. ``predictor`` adds its estimate beside the supernet's (it is not part of the saved selection, so a
    finished ranking can be scored with any predictor later). Under torchrun, every process calls this and
    trains its share; the result is returned on rank 0 (None elsewhere)."""
    if archs < 2:
        raise ConfigError(f"ranking needs at least 2 architectures, but got archs={archs}")
    space = evaluator.space
    for table in tables:
        check_table(table, space)
    if predictor is not None:
        predictor.check_for(space)
    if sample.kind == "target" and not tables:
        raise ConfigError("--sample target chooses architectures by their latency on a table, but got no --table")
    labels = table_labels(tables)
    sources = [] if archs_from is None else [Path(archs_from)] if isinstance(archs_from, (str, Path)) else \
        [Path(a) for a in archs_from]
    if pool_seed is not None and sources:
        raise ConfigError(f"--pool-seed seeds the random sample architectures are chosen from, but --archs-from takes "
                          f"them from {', '.join(map(str, sources))}; give one or the other")
    if sources and sample.kind == "target":
        raise ConfigError("--sample target draws architectures of one latency from the space, but --archs-from takes "
                          "them from searches or rankings; give one or the other")
    found = candidates(space, sources) if sources else None
    if found is not None:
        (spread if sample.kind == "spread" else lambda a, _, k: random_subset(a, k))(
            [Architecture.parse(a) for a in found["arch"]], found["accuracy"].tolist(), archs)
    path = check_output_dir(output, "a ranking directory", "ranking")
    described = evaluator.describe()
    config = {"supernet": described.get("run_dir"), "space": space.describe(), "data": data,
              "recipe": recipe.settings(), "archs": archs, "seed": seed, "sample": asdict(sample),
              "estimator": {"bn_batches": described.get("bn_batches"), "val_samples": described.get("val_samples")},
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
                                    lambda: _select(evaluator, archs, pool, sample, found, tables[0] if tables else None))
            chosen = share(world, chosen)
            # the trainings of the rankings the architectures came from count here too (same recipe and data)
            folders = [Path(f) / RUNS for f in [*sources, *reuse]]
            trained = train_standalone([(space.name, c["arch"]) for c in chosen], recipe, data, path / RUNS,
                                       seeds=seeds, on_progress=on_progress, rank=rank, world=world, reuse=folders)
            if rank != 0:
                return None
            return _finish(path, space, chosen, trained, tables, labels, config, sample, predictor)


def _finish(path: Path, space: SearchSpace, chosen: list[dict], trained: list, tables: Sequence[LookupTable],
            labels: Sequence[str], config: dict, sample: Sample, predictor: Predictor | None) -> RankResult:
    rows = []
    predicted = predictor.predict([c["arch"] for c in chosen]) if predictor is not None else None
    for i, (entry, done) in enumerate(zip(chosen, trained)):
        arch = Architecture.parse(entry["arch"])
        cost = arch_cost(space, arch)
        row = {**entry, **({PREDICTED: float(predicted[i])} if predicted is not None else {}),
               "standalone_test_acc": done.test_acc, "standalone_val_acc": done.val_acc}
        if len(done.test_accs) > 1:
            row["standalone_test_acc_sd"] = done.test_acc_sd
        row.update({latency_column(label): table.predict(arch).latency_ms for label, table in zip(labels, tables)})
        row.update({"macs": cost.macs, "params": cost.params, "run": str(done.run_dir.relative_to(path))})
        rows.append(row)
    frame = pd.DataFrame(rows)
    estimates = {name: frame[column] for name, column in ESTIMATES.items()}
    if predictor is not None:
        estimates["predictor"] = frame[PREDICTED]
    estimates.update({name: frame[name] for name in BASELINES})
    pairs = [("recalibrated_bn", b) for b in BASELINES] + [("recalibrated_bn", "inherited_bn")]
    if predictor is not None:
        pairs = [("predictor", "recalibrated_bn"), *(("predictor", b) for b in BASELINES), *pairs]
    comparison = compare(frame["standalone_test_acc"], estimates, pairs=pairs, seed=config["seed"])
    agreements = comparison.agreements
    baselines = {b: agreements[b] for b in BASELINES}
    said = verdict(agreements["recalibrated_bn"], len(frame), baselines, differences=_tau_differences(
        comparison, "recalibrated_bn"))
    if predictor is not None:
        said += "; " + verdict(agreements["predictor"], len(frame), baselines, who="the predictor",
                               differences=_tau_differences(comparison, "predictor"))
    truth = reliability([done.test_accs for done in trained], seed=config["seed"])
    result = RankResult(path, frame, comparison, said, config, truth)
    write_atomic(path / RANK_CSV, frame.to_csv(index=False))
    predictor_info = None if predictor is None else {"path": str(predictor.path.resolve()) if predictor.path else None,
                                                     "digest": predictor.digest(), "target": predictor.target}
    write_atomic(path / RANK_JSON, dump_json({
        "kind": "hwnas-rank", "version": 2, "hwnas": __version__, **config, "sample_text": sample.describe(),
        "predictor": predictor_info, "top_k": comparison.k, "top_k_chance": comparison.chance_top_k,
        "bootstrap": BOOTSTRAP, "tables": list(labels), "verdict": said,
        "truth": None if truth is None else truth.row(),
        "agreement": plain(result.agreement), "baselines": plain(result.baselines),
        "differences": [{"estimates": list(pair), **{s: vars(a) for s, a in d.items()}}
                        for pair, d in comparison.differences.items()]},
        nan_as_null=True, indent=2) + "\n")
    return result


def _tau_differences(comparison: Comparison, estimate: str) -> dict[str, Agreement]:
    """The paired Kendall tau differences of ``estimate`` against each size baseline."""
    return {b: diffs["kendall_tau"] for (a, b), diffs in comparison.differences.items()
            if a == estimate and b in BASELINES}

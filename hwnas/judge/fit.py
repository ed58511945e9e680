"""Fitting an accuracy predictor (`hwnas.search.predictor`) from a trained supernet (``hwnas predictor fit``).

1. ``samples`` architectures are drawn uniformly from the space (seeded) and scored by the supernet: inherited
   weights, BN recalibrated, the run's validation split (the evaluator's images and batches). Under
   ``torchrun`` the processes score their share of every chunk and rank 0 gathers them: the scores equal
   one process's with the same threads. Scores are kept in ``PRED.scores.jsonl`` as they come (a killed fit
   resumes; a later fit with the same supernet and evaluator settings reuses them).
2. Where ``standalone`` names rankings or reports, their architectures' stand-alone validation accuracies
   (never the test split) become the second stage; those architectures are scored by the supernet too.
3. The held-out figures: against supernet scores, the predictor's out-of-fold predictions (5 folds) beside
   MACs and params; against stand-alone test accuracy, where known, the predictor with its stand-alone stage
   cross-validated (leave-one-out up to 50 architectures, else 10 folds), its first stage alone, the raw
   supernet score, MACs and params, with bootstrap intervals and paired differences.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hwnas.errors import ConfigError
from hwnas.files import append_line, dump_json, write_atomic
from hwnas.judge.agreement import Comparison, compare
from hwnas.judge.selection import random_sample
from hwnas.judge.sources import standalone_results
from hwnas.judge.standalone import job
from hwnas.outputs import check_apart, check_kind_file, check_output_file, file_lock
from hwnas.progress import ProgressCallback, report
from hwnas.readers import read_json_lines
from hwnas.search.predictor import CALIBRATION_WEIGHT, Predictor
from hwnas.search.predictor_file import KIND
from hwnas.search.ridge import out_of_fold
from hwnas.space import Architecture
from hwnas.supernet.evaluator import SupernetEvaluator
from hwnas.tables import LookupTable

SCORES_KIND = "hwnas-predictor-scores"
#: architectures scored between two saves of the scores file (per process)
CHUNK = 16
#: fewest supernet-scored architectures a predictor is fitted on
FEWEST = 20


@dataclass
class FitResult:
    """The fitted predictor (saved at ``path``), its held-out comparisons against supernet scores and (where
    known) stand-alone accuracy, and the noise of one supernet score."""

    predictor: Predictor
    path: Path
    against_supernet: Comparison
    against_standalone: Comparison | None
    noise: str

    def rows(self) -> list[dict]:
        out = []
        for truth, comparison in (("supernet score", self.against_supernet),
                                  ("stand-alone test acc", self.against_standalone)):
            if comparison is None:
                continue
            for name, stats in comparison.agreements.items():
                out.append({"against": truth, "n": comparison.n, "estimate": name,
                            **{k: v for s, a in stats.items() if s != "spearman_rho" for k, v in a.row(s).items()}})
        return out

    def difference_rows(self) -> list[dict]:
        return [{"against": truth, **row} for truth, c in (("supernet score", self.against_supernet),
                                                           ("stand-alone test acc", self.against_standalone))
                if c is not None for row in c.difference_rows()]


def scores_path(output: Path) -> Path:
    return output.with_name(output.name + ".scores.jsonl")


def score(evaluator: SupernetEvaluator, archs: Sequence[Architecture], path: Path,
          on_progress: ProgressCallback | None = None, *, rank: int = 0, world: int = 1) -> dict[str, float]:
    """Supernet accuracy (%) of every architecture, by architecture string: those in the scores file ``path``
    (written for the same evaluator) are read, the rest scored (split over the processes of a torchrun job)
    and appended as they come."""
    import torch.distributed as dist

    header = {"kind": SCORES_KIND, "evaluator": evaluator.describe()}
    known: dict[str, float] = {}
    if rank == 0 and path.exists() and path.stat().st_size:
        lines = [value for _, value in read_json_lines(path, "a predictor's scores file", ConfigError)]
        if lines and lines[0] == header:
            for entry in lines[1:]:
                if isinstance(entry, dict) and isinstance(entry.get("arch"), str) and isinstance(
                        entry.get("accuracy"), (int, float)) and not isinstance(entry.get("accuracy"), bool):
                    known[entry["arch"]] = float(entry["accuracy"])
    if world > 1:
        box = [known]
        dist.broadcast_object_list(box, src=0)
        known = box[0]
    todo = [a for a in dict.fromkeys(archs) if str(a) not in known]
    writer = None
    if rank == 0:
        # the file again from what was read (a line cut by a kill is gone), then every new score appended
        write_atomic(path, "".join(dump_json(line) + "\n" for line in [
            header, *({"arch": a, "accuracy": v} for a, v in known.items())]))
        writer = open(path, "a")
    try:
        step = CHUNK * world
        report(on_progress, "supernet scores", len(archs) - len(todo), len(archs))
        for start in range(0, len(todo), step):
            chunk = todo[start:start + step]
            mine = {str(a): evaluator(a) for a in chunk[rank::world]}
            if world > 1:
                gathered: list[Any] = [None] * world
                dist.all_gather_object(gathered, mine)
                mine = {k: v for part in gathered for k, v in part.items()}
            for arch in chunk:
                known[str(arch)] = mine[str(arch)]
                if writer is not None:
                    append_line(writer, dump_json({"arch": str(arch), "accuracy": mine[str(arch)]}))
            report(on_progress, "supernet scores", len(archs) - len(todo) + start + len(chunk), len(archs))
    finally:
        if writer is not None:
            writer.close()
    return {str(a): known[str(a)] for a in archs}


def check_predictor_output(output: str | Path, inputs: Sequence[str | Path | None]) -> Path:
    """A predictor file may be written at ``output``: a new path or a predictor, never one of ``inputs`` (the
    supernet run, stand-alone folders, the table) or a file inside them."""
    output = check_output_file(output, "a predictor file")
    check_apart(output, inputs, "a predictor file")
    check_kind_file(output, KIND, "a predictor file")
    return output


def fit_predictor(evaluator: SupernetEvaluator, data: dict[str, Any], output: str | Path, *, samples: int = 500,
                  seed: int = 0, standalone: Sequence[str | Path] = (), table: LookupTable | None = None,
                  folds: int = 5, on_progress: ProgressCallback | None = None) -> FitResult | None:
    """Fit and save a predictor (see the module docstring); ``data`` are the supernet run's data settings
    (`hwnas.training.trained.data_settings`). Under torchrun every process calls this and scores its share;
    the result is returned on rank 0 (None elsewhere)."""
    space = evaluator.space
    if samples < FEWEST:
        raise ConfigError(f"a predictor is fitted on at least {FEWEST} supernet-scored architectures, but got "
                          f"samples={samples}")
    if folds < 2:
        raise ConfigError(f"held-out figures need at least 2 folds, but got folds={folds}")
    output = check_predictor_output(output, [evaluator.describe().get("run_dir"), *standalone,
                                             table.path if table is not None else None])
    if table is not None:
        table.check_built_for(space)
    trained = standalone_results(space, [Path(s) for s in standalone], data) if standalone else None
    if trained is not None and len(trained) < 5:
        raise ConfigError(f"--standalone must hold at least 5 architectures of the space trained stand-alone, but "
                          f"{', '.join(map(str, standalone))} hold {len(trained)}")
    if trained is not None and trained["val_acc"].isna().any():
        raise ConfigError("the stand-alone stage fits validation accuracies, but some trainings of --standalone "
                          "have none (trained without a validation split)")
    held = [] if trained is None else [Architecture.parse(a) for a in trained["arch"]]
    archs = random_sample(space, samples, seed, exclude=map(str, held))
    with job() as (rank, world):
        with file_lock(output, "predictor file") if rank == 0 else nullcontext():
            scores = score(evaluator, [*archs, *held], scores_path(output), on_progress, rank=rank, world=world)
            if rank != 0:
                return None
            return _fit(evaluator, output, archs, held, scores, trained, table, seed, folds,
                        {"supernet": evaluator.describe().get("run_dir"), "data": data,
                         "evaluator": evaluator.describe(), "samples": samples, "seed": seed,
                         "standalone": [str(Path(s).resolve()) for s in standalone],
                         "standalone_archs": len(held),
                         "table": None if table is None else {"path": str(table.path) if table.path else None,
                                                              "digest": table.digest()}})


def _fit(evaluator: SupernetEvaluator, output: Path, archs: list[Architecture], held: list[Architecture],
         scores: dict[str, float], trained: Any, table: LookupTable | None, seed: int, folds: int,
         fitted_on: dict[str, Any]) -> FitResult:
    space = evaluator.space
    y = np.array([scores[str(a)] for a in archs])
    pairs = list(zip(archs, y.tolist()))
    standalone_pairs = [] if trained is None else list(zip(held, trained["val_acc"].astype(float).tolist()))
    predictor = Predictor.fit(space, pairs, standalone=standalone_pairs, table=table, fitted_on=fitted_on)
    idx = predictor.indices(archs)
    size = predictor.size_features(idx)
    oof = out_of_fold(predictor.stage1_features(idx), y, folds, seed)
    against_supernet = compare(y, {"predictor": oof, "macs": size[:, 0], "params": size[:, 1]},
                               pairs=[("predictor", "macs")], seed=seed, samples=500)
    against_standalone = None
    if trained is not None:
        idx_h = predictor.indices(held)
        prior = predictor.stage1.predict(predictor.stage1_features(idx_h))
        x2 = predictor.stage2_features(idx_h, prior)
        weights = [CALIBRATION_WEIGHT] * 3 + [1.0] * (x2.shape[1] - 3)
        cv = out_of_fold(x2, trained["val_acc"].to_numpy(float), len(held) if len(held) <= 50 else 10, seed,
                         weights=weights, allow_infinite=True)
        size_h = predictor.size_features(idx_h)
        against_standalone = compare(
            trained["test_acc"].to_numpy(float),
            {"predictor": cv, "predictor, supernet stage only": prior,
             "supernet": [scores[str(a)] for a in held], "macs": size_h[:, 0], "params": size_h[:, 1]},
            pairs=[("predictor", "macs"), ("predictor", "supernet"), ("supernet", "macs")], seed=seed)
    samples_seen = evaluator.describe().get("val_samples") or 0
    se = float(np.mean([100 * math.sqrt(max(p, 0) / 100 * (1 - p / 100) / samples_seen) for p in y])) \
        if samples_seen else math.nan
    noise = (f"supernet scores of {len(y)} architectures on {samples_seen} validation images each: a standard error "
             f"of {se:.2f} points a score, against an sd of {np.std(y, ddof=1):.2f} points between architectures")
    result = FitResult(predictor, output, against_supernet, against_standalone, noise)
    predictor.fitted_on["heldout"] = {"noise": noise, "rows": result.rows(), "differences": result.difference_rows()}
    predictor.save(output)
    return result


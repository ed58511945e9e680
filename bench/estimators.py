"""How well do the estimators a search can use rank architectures it has not seen? The supernet, an accuracy
predictor fitted on supernet scores, the predictor with a stand-alone stage (cross-validated), and MACs.

    python bench/estimators.py --work W --supernet uniform=W/uniform --supernet sandwich=W/sandwich \\
        [--archs 24 --seeds 2 --samples 400 --val-batches 16 --reuse DIR ...]

For every supernet, through the CLI as a user would:

1. ``hwnas predictor fit --supernet S --samples N`` (N random architectures scored by the supernet);
2. ``hwnas rank S --archs K --seeds 2 --predictor P``: K architectures drawn uniformly from the space (the same
   K for every supernet: the same seed), each trained stand-alone twice (trainings of other rankings reused with
   ``--reuse``; a second supernet reuses the first's), Kendall tau with intervals of the supernet, the predictor,
   params and MACs, and the paired differences;
3. ``hwnas predictor fit --supernet S --standalone RANK``: the predictor with a stand-alone stage on the K
   architectures' validation accuracies, its held-out tau against their test accuracy by leave-one-out.

Prints one table: estimator, Kendall tau [95 %], top-k overlap, and the paired difference to MACs, per supernet,
then the wall time of every step. Every step resumes: finished work is never redone.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

from hwnas.judge.agreement import compare


def hwnas(*args: str, capture: bool = False) -> tuple[float, str]:
    started = time.perf_counter()
    print("$ hwnas " + " ".join(args), flush=True)
    done = subprocess.run([sys.executable, "-m", "hwnas.cli", *args], check=True, text=True,
                          stdout=subprocess.PIPE if capture else None)
    return time.perf_counter() - started, done.stdout or ""


def cell(stats: dict) -> str:
    if stats.get("kendall_tau") is None:
        return "n/a"
    return f"{stats['kendall_tau']:+.2f} [{stats['kendall_tau_low']:+.2f}, {stats['kendall_tau_high']:+.2f}]"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", required=True, type=Path)
    parser.add_argument("--supernet", action="append", required=True, metavar="NAME=RUN_DIR",
                        help="a trained supernet (repeatable); the first one's ranking trains the architectures")
    parser.add_argument("--archs", type=int, default=24)
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--samples", type=int, default=400, help="architectures each predictor is fitted on")
    parser.add_argument("--bn-batches", type=int, default=None)
    parser.add_argument("--val-batches", type=int, default=16, help="validation batches per supernet score")
    parser.add_argument("--standalone-epochs", type=int, default=10)
    parser.add_argument("--standalone-steps", type=int, default=100)
    parser.add_argument("--reuse", action="append", default=[], help="rankings or reports whose trainings count")
    parser.add_argument("--threads", default="1")
    args = parser.parse_args()

    work = args.work
    work.mkdir(parents=True, exist_ok=True)
    supernets = dict(s.split("=", 1) for s in args.supernet)
    scoring = ["--val-batches", str(args.val_batches), *(["--bn-batches", str(args.bn_batches)] if args.bn_batches
                                                         else [])]
    recipe = ["--epochs", str(args.standalone_epochs), "--steps-per-epoch", str(args.standalone_steps),
              "--seeds", str(args.seeds), "--threads", args.threads, "--no-progress"]
    seconds, results = {}, {}
    first_rank = None
    for name, run_dir in supernets.items():
        pred = work / f"predictor-{name}.json"
        seconds[f"{name}: predictor fit ({args.samples} scored)"], _ = hwnas(
            "predictor", "fit", "--supernet", run_dir, "--samples", str(args.samples), *scoring,
            "--threads", args.threads, "--no-progress", "-o", str(pred))
        rank = work / f"rank-{name}"
        reuse = [part for folder in [*args.reuse, *([first_rank] if first_rank else [])] for part in ("--reuse", str(folder))]
        seconds[f"{name}: rank {args.archs} x {args.seeds} seeds"], out = hwnas(
            "rank", run_dir, "--archs", str(args.archs), "--predictor", str(pred), *reuse, *recipe,
            "-o", str(rank), "--format", "json", capture=True)
        first_rank = first_rank or rank
        ranked = json.loads(out)
        ranked = {**ranked["summary"], "rows": ranked["rows"]}  # --format json: {"rows": [...], "summary": {...}}
        pred_sa = work / f"predictor-{name}-standalone.json"
        scores, scores_sa = (Path(f"{p}.scores.jsonl") for p in (pred, pred_sa))
        if scores.exists() and not scores_sa.exists():  # the same sample, scored alike: not scored twice
            shutil.copyfile(scores, scores_sa)
        seconds[f"{name}: predictor fit with the stand-alone stage"], out = hwnas(
            "predictor", "fit", "--supernet", run_dir, "--samples", str(args.samples), *scoring, "--standalone",
            str(rank), "--threads", args.threads, "--no-progress", "-o", str(pred_sa), "--format", "json",
            capture=True)
        fitted = json.loads(out)
        fitted = {**fitted["summary"], "rows": fitted["rows"]}
        results[name] = (ranked, fitted)

    print(f"\n{args.archs} architectures drawn uniformly from the space, each trained stand-alone "
          f"{args.standalone_epochs} epochs x {args.standalone_steps} steps with {args.seeds} seeds (test split); "
          f"predictors fitted on {args.samples} supernet-scored architectures")
    print(f"{'supernet':<12}{'estimator':<44}{'Kendall tau [95 %]':<24}{'top-k':<8}{'minus MACs [95 %]'}")
    for name, (ranked, fitted) in results.items():
        diffs = {d["compared"]: d for d in ranked["differences"]}
        for row in ranked["rows"]:
            label = row["ranked_by"]
            key = {"supernet, BN recalibrated": "recalibrated_bn", "supernet, BN inherited": "inherited_bn",
                   "predictor": "predictor"}.get(label)
            diff = diffs.get(f"{key} - macs") if key else None
            shown = cell(diff) if diff else ""
            print(f"{name:<12}{label:<44}{cell(row):<24}{row['top_k_overlap']:<8.2f}{shown}")
        sa = [r for r in fitted["rows"] if r["against"] == "stand-alone test acc" and r["estimate"] == "predictor"]
        sa_diff = [d for d in fitted["differences"] if d["against"] == "stand-alone test acc"
                   and d["compared"] == "predictor - macs"]
        if sa:
            print(f"{name:<12}{'predictor + stand-alone stage (leave-one-out)':<44}{cell(sa[0]):<24}"
                  f"{sa[0]['top_k_overlap']:<8.2f}{cell(sa_diff[0]) if sa_diff else ''}")
        print(f"{name:<12}verdict: {ranked['verdict']}")
        print(f"{name:<12}noise: {fitted['noise']}")
    if len(results) > 1:  # the supernets against each other, paired over the same architectures
        frames = {name: pd.read_csv(work / f"rank-{name}" / "rank.csv").set_index("arch") for name in results}
        first = next(iter(frames.values()))
        archs = [a for a in first.index if all(a in f.index for f in frames.values())]
        scores = {name: f.loc[archs, "supernet_acc_recalibrated_bn"].to_numpy() for name, f in frames.items()}
        names = list(scores)
        pairs = [(a, b) for i, a in enumerate(names) for b in names[i + 1:]]
        paired = compare(first.loc[archs, "standalone_test_acc"].to_numpy(), scores, pairs=pairs)
        print(f"\nsupernets against each other (BN recalibrated, paired over the same {len(archs)} architectures)")
        for (a, b), diff in paired.differences.items():
            d = diff["kendall_tau"]
            print(f"  {a} - {b}: Kendall tau {d.value:+.2f} [{d.low:+.2f}, {d.high:+.2f}]")
    print()
    for step, s in seconds.items():
        print(f"  {step:<58}{s:8.0f} s")


if __name__ == "__main__":
    main()

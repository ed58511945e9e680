"""Does the supernet rank architectures as training them would? A uniform and a strict-fairness supernet.

    python bench/rank_supernets.py --work /tmp/rank-bench [--archs 12 --standalone-steps 100]

Trains, through the CLI as a user would, two FBNet supernets on Fashion-MNIST (width 0.25, 16x16) at equal
compute: uniform sampling for E epochs of S steps (one path per step) and strict fairness for E epochs of
S / 9 steps (every one of the 9 ops of every layer once per step, so 9 paths per step). Then
``hwnas rank UNIFORM --archs K`` trains K architectures stand-alone (spread over the uniform supernet's
accuracy range) and ``hwnas rank FAIRNESS --archs-from UNIFORM_RANK`` scores the same K architectures on
the fairness supernet, reusing the stand-alone trainings: a paired comparison. Prints both rankings'
Kendall tau, Spearman rho and top-k overlap with their bootstrap 95 % intervals side by side, with BN
recalibrated and inherited, and the wall time of every step. ``--seed-check N`` trains N of the
architectures again with another seed: how much a stand-alone accuracy moves by chance alone, beside the
spread of the K accuracies (a ranking cannot be judged more finely than that); ``--seeds S`` ranks both
supernets again by the mean of S trainings per architecture, reusing every training already done.
``--union-with OTHER_WORK`` (a work folder of an earlier run of this bench, e.g. with shorter supernets) then
ranks the supernets of both folders by the union of both folders' architectures (``--archs-from`` twice):
twice the architectures for the price of one set of trainings, every training reused. Every step resumes:
run it again after an interruption and finished work is not redone.
"""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from scipy.stats import kendalltau

OPS = 9  # candidate ops per fbnet layer: a strict-fairness step trains 9 paths


def hwnas(*args: str) -> float:
    started = time.perf_counter()
    command = [sys.executable, "-m", "hwnas.cli", *args]
    print("$ hwnas " + " ".join(args), flush=True)
    subprocess.run(command, check=True)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", required=True, type=Path)
    parser.add_argument("--dataset", default="fashion-mnist")
    parser.add_argument("--epochs", type=int, default=30, help="supernet epochs (the demo: 10)")
    parser.add_argument("--steps", type=int, default=72, help="uniform steps per epoch (fairness: this / 9)")
    parser.add_argument("--archs", type=int, default=12)
    parser.add_argument("--standalone-epochs", type=int, default=10)
    parser.add_argument("--standalone-steps", type=int, default=100, help="stand-alone steps per epoch (0: a pass)")
    parser.add_argument("--seed-check", type=int, default=0, metavar="N",
                        help="retrain N of the architectures with another seed: the stand-alone accuracy's own noise")
    parser.add_argument("--seeds", type=int, default=1, metavar="S",
                        help="also rank both supernets by the mean of S trainings per architecture (hwnas rank "
                             "--seeds S), reusing every training already done")
    parser.add_argument("--threads", default="2", help="fixed, so that results do not depend on the load")
    parser.add_argument("--pool-seed", default=None, help="hwnas rank --pool-seed of the first ranking: with "
                        "--union-with, another seed than the other folder's, so that the architectures differ")
    parser.add_argument("--union-with", type=Path, default=None, metavar="OTHER_WORK",
                        help="also rank the supernets of this folder and of OTHER_WORK (the same bench, run with "
                             "other supernet settings) by the union of both folders' architectures")
    args = parser.parse_args()

    work = args.work
    common = ["--space", "fbnet", "--dataset", args.dataset, "--width", "0.25", "--resolution", "16",
              "--epochs", str(args.epochs), "--eval-paths", "2", "--threads", args.threads, "--no-progress"]
    seconds = {}
    seconds["uniform supernet"] = hwnas("train", *common, "--strategy", "uniform", "--steps-per-epoch",
                                        str(args.steps), "-o", str(work / "uniform"))
    seconds["fairness supernet"] = hwnas("train", *common, "--strategy", "fairness", "--steps-per-epoch",
                                         str(args.steps // OPS), "-o", str(work / "fairness"))
    recipe = ["--epochs", str(args.standalone_epochs), "--steps-per-epoch", str(args.standalone_steps),
              "--threads", args.threads, "--no-progress"]
    pool = ["--pool-seed", args.pool_seed] if args.pool_seed is not None else []
    seconds["rank uniform (trains K)"] = hwnas("rank", str(work / "uniform"), "--archs", str(args.archs), *pool,
                                               *recipe, "-o", str(work / "rank-uniform"))
    seconds["rank fairness (reuses them)"] = hwnas("rank", str(work / "fairness"), "--archs", str(args.archs),
                                                   "--archs-from", str(work / "rank-uniform"), *recipe,
                                                   "-o", str(work / "rank-fairness"))

    if args.seed_check:
        seconds[f"{args.seed_check} retrained, seed 1"] = hwnas(
            "rank", str(work / "uniform"), "--archs", str(args.seed_check), "--archs-from", str(work / "rank-uniform"),
            *recipe, "--seed", "1", "-o", str(work / "rank-seed1"))

    names = ["uniform", "fairness"]
    if args.seeds > 1:
        done = [work / "rank-seed1"] if args.seed_check else []
        reuse = [part for folder in done for part in ("--reuse", str(folder))]
        seconds[f"rank uniform, {args.seeds} seeds"] = hwnas(
            "rank", str(work / "uniform"), "--archs", str(args.archs), "--archs-from", str(work / "rank-uniform"),
            *reuse, *recipe, "--seeds", str(args.seeds), "-o", str(work / f"rank-uniform-{args.seeds}seeds"))
        seconds[f"rank fairness, {args.seeds} seeds"] = hwnas(
            "rank", str(work / "fairness"), "--archs", str(args.archs), "--archs-from",
            str(work / f"rank-uniform-{args.seeds}seeds"), *recipe, "--seeds", str(args.seeds),
            "-o", str(work / f"rank-fairness-{args.seeds}seeds"))
        names += [f"uniform-{args.seeds}seeds", f"fairness-{args.seeds}seeds"]
    ranks = {name: json.loads((work / f"rank-{name}" / "rank.json").read_text()) for name in names}
    if args.union_with is not None:
        suffix = f"-{args.seeds}seeds" if args.seeds > 1 else ""
        sources = [folder / f"rank-uniform{suffix}" for folder in (work, args.union_with)]
        union = set().union(*(standalone(source) for source in sources))
        froms = [part for source in sources for part in ("--archs-from", str(source))]
        for folder, label in ((work, "this"), (args.union_with, "other")):
            for strategy in ("uniform", "fairness"):
                name = f"union-{label}-{strategy}{suffix}"
                seconds[f"rank {name}"] = hwnas(
                    "rank", str(folder / strategy), "--archs", str(len(union)), *froms, *recipe,
                    "--seeds", str(args.seeds), "-o", str(work / f"rank-{name}"))
                ranks[name] = json.loads((work / f"rank-{name}" / "rank.json").read_text())
    print(f"\nfbnet, {args.dataset}, width 0.25, 16x16; supernets {args.epochs} epochs x {args.steps} uniform "
          f"steps / {args.steps // OPS} fairness steps; {args.archs} architectures trained stand-alone "
          f"{args.standalone_epochs} epochs x {args.standalone_steps or 'a pass of'} steps, scored on the test split")
    for name, s in seconds.items():
        print(f"  {name:<30}{s:8.0f} s")
    print(f"\n{'supernet':<30}{'BN':<19}{'Kendall tau [95 %]':<26}{'Spearman rho [95 %]':<26}top-k overlap [95 %]")
    for name, rank in ranks.items():
        # the size baselines a supernet should beat (the same for every supernet of the same architectures)
        for estimate, stats in [*rank["agreement"].items(), *((f"{b} (baseline)", s)
                                                             for b, s in rank.get("baselines", {}).items())]:
            if stats["kendall_tau"]["value"] is None:  # all tied: JSON null
                continue
            cells = [f"{s['value']:+.2f} [{s['low']:+.2f}, {s['high']:+.2f}]"
                     for s in (stats["kendall_tau"], stats["spearman_rho"], stats["top_k_overlap"])]
            print(f"{name:<30}{estimate:<19}{cells[0]:<26}{cells[1]:<26}{cells[2]}")
    for name, rank in ranks.items():
        print(f"{name}: {rank['verdict']}")
    first = standalone(work / "rank-uniform")
    values = np.array(list(first.values()))
    print(f"\nstand-alone test accuracy of the {len(values)} architectures: {values.min():.2f}-{values.max():.2f} % "
          f"(sd {values.std(ddof=1):.2f} points)")
    if args.seed_check:
        again = standalone(work / "rank-seed1")
        pairs = np.array([(first[arch], acc) for arch, acc in again.items()])
        noise = (pairs[:, 0] - pairs[:, 1]).std(ddof=1) / np.sqrt(2)
        print(f"the same {len(pairs)} trained again with seed 1: mean |difference| "
              f"{np.abs(pairs[:, 0] - pairs[:, 1]).mean():.2f} points, sd of one training {noise:.2f} points, "
              f"Kendall tau seed 0 vs seed 1 {kendalltau(pairs[:, 0], pairs[:, 1]).statistic:+.2f}")
        for arch, acc in again.items():
            print(f"  {first[arch]:6.2f} {acc:6.2f}  {arch}")


def standalone(folder: Path) -> dict[str, float]:
    with open(folder / "rank.csv", newline="") as f:
        return {row["arch"]: float(row["standalone_test_acc"]) for row in csv.DictReader(f)}


if __name__ == "__main__":
    main()

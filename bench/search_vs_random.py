"""Does a predictor-guided search beat random architectures and a published one at equal latency?

    python bench/search_vs_random.py --work W --supernet W/uniform --table W/fbnet-ort.jsonl \\
        --predictor W/predictor-uniform.json [--percentiles 30,70 --reference FBNet-A --random 8 --seeds 2]

Through the CLI as a user would:

1. ``hwnas search --predictor P --supernet S`` (evolution scored by the predictor, thousands of candidates a
   target, the best re-scored by the supernet) at three latency targets: the given percentiles of random
   architectures' table latencies, and the reference's own table latency (``--target-latency FBNet-A``);
2. ``hwnas report SEARCH --random K --seeds 2 --reference FBNet-A``: each returned architecture, K random
   architectures within 5 % of its table latency and the reference, all trained stand-alone with one recipe
   and two seeds; the report compares each found architecture with the best of its K random neighbours and,
   at the reference's latency, with the reference, with 95 % intervals from the pooled sd of one training.

Prints one line per comparison (found, other, difference [95 %], how many standard errors) and the wall time of
every step. Every step resumes: finished trainings are never redone (``--reuse`` counts other reports').
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import time
from pathlib import Path

import numpy as np


def hwnas(*args: str, capture: bool = False, processes: int = 1) -> tuple[float, str]:
    """``hwnas ARGS`` (under ``torchrun`` with ``processes`` > 1); its stdout when ``capture``."""
    started = time.perf_counter()
    launch = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(processes)] \
        if processes > 1 else [sys.executable]
    print(("$ torchrun ... " if processes > 1 else "$ ") + "hwnas " + " ".join(args), flush=True)
    done = subprocess.run([*launch, "-m", "hwnas.cli", *args], check=True, text=True,
                          stdout=subprocess.PIPE if capture else None)
    return time.perf_counter() - started, done.stdout or ""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", required=True, type=Path)
    parser.add_argument("--supernet", required=True)
    parser.add_argument("--table", required=True)
    parser.add_argument("--predictor", required=True)
    parser.add_argument("--percentiles", default="30,70", help="targets besides the reference's latency")
    parser.add_argument("--reference", default="FBNet-A")
    parser.add_argument("--population", type=int, default=1000)
    parser.add_argument("--generations", type=int, default=20)
    parser.add_argument("--parents", type=int, default=100)
    parser.add_argument("--rescore", type=int, default=None,
                        help="best candidates re-scored by the supernet [default: hwnas search's, by the predictor]")
    parser.add_argument("--random", type=int, default=8)
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--standalone-epochs", type=int, default=10)
    parser.add_argument("--standalone-steps", type=int, default=100)
    parser.add_argument("--reuse", action="append", default=[])
    parser.add_argument("--threads", default="1")
    parser.add_argument("--processes", type=int, default=1, help="torchrun processes that share the trainings")
    args = parser.parse_args()

    from hwnas.tables import LookupTable

    table = LookupTable.load(args.table)
    space = table.space
    rng = random.Random(0)
    latencies = table.predict_indices(np.array([space.indices(space.sample(rng)) for _ in range(5000)]))
    targets = [f"{float(np.percentile(latencies, float(p))):.4f}ms" for p in args.percentiles.split(",")]
    targets.append(args.reference)
    work = args.work
    seconds = {}
    search = work / "search"
    seconds["search (3 targets)"], out = hwnas(
        "search", "--strategy", "evolution", "--space", space.name, "--table", args.table, "--target-latency",
        ",".join(targets), "--supernet", args.supernet, "--predictor", args.predictor, "--population",
        str(args.population), "--generations", str(args.generations), "--parents", str(args.parents),
        *(["--rescore", str(args.rescore)] if args.rescore is not None else []), "--threads", args.threads, "-o",
        str(search), "--format", "json", capture=True)
    found = json.loads(out)["rows"]
    reuse = [part for folder in args.reuse for part in ("--reuse", folder)]
    seconds[f"report (+{args.random} random each, {args.seeds} seeds)"], out = hwnas(
        "report", str(search), "--random", str(args.random), "--seeds", str(args.seeds), "--reference",
        args.reference, "--epochs", str(args.standalone_epochs), "--steps-per-epoch", str(args.standalone_steps),
        *reuse, "--threads", args.threads, "--no-progress", "-o", str(work / "report"), "--format", "json",
        capture=True, processes=args.processes)
    report = json.loads(out)
    report = {**report["summary"], "rows": report["rows"]}  # --format json: {"rows": [...], "summary": {...}}
    rescored = json.loads(Path(args.predictor).read_text()).get("target") == "supernet" \
        if args.rescore is None else args.rescore > 0
    print(f"\nsearch: evolution on the predictor, {args.population} x {args.generations} per target"
          + (", the best re-scored by the supernet" if rescored else ", the predictor's best returned"))
    for row in found:
        print(f"  target {row['target_ms']:.4g} ms: {row['candidates']} candidates, returned "
              f"{row['best_accuracy']:.2f} % ({row.get('scored_by')}) at "
              f"{row[f'latency_ms[{table.device_name}]']:.4g} ms")
    print(f"\nstand-alone, {args.standalone_epochs} epochs x {args.standalone_steps} steps, mean of {args.seeds} "
          f"seeds (test split)")
    for r in report["rows"]:
        if r["kind"] != "random":
            print(f"  {r['kind']:<10}{r['name']:<40}{r['test_acc']:7.2f} %  sd {r.get('test_acc_sd', float('nan')):.2f}"
                  f"  {r[f'latency_ms[{table.device_name}]']:.4g} ms")
    print("\nat equal latency (found - other, 95 % interval)")
    for c in report["comparisons"]:
        low = "n/a" if c["low"] is None else f"[{c['low']:+.2f}, {c['high']:+.2f}]"
        print(f"  {c['found']:<28} vs {c['against']:<38} {c['difference']:+.2f} {low}  {c['verdict']}"
              + (f"  (beats {c['beats_random']} random)" if c.get("beats_random") else ""))
    print()
    for step, s in seconds.items():
        print(f"  {step:<50}{s:8.0f} s")


if __name__ == "__main__":
    main()

"""Wall time of ``hwnas rank`` in one process beside two ``torchrun`` processes, on the same work.

    python bench/rank_processes.py --work /tmp/rank-processes [--archs 4 --epochs 2 --steps 50]

Trains a small FBNet supernet on the embedded Fashion-MNIST subset (width 0.25, 16x16; skipped if the run
directory is already there), then ranks K architectures three ways, each into a fresh directory: one
process with 2 threads, one process with 1 thread, and ``torchrun --nproc_per_node 2`` with 1 thread per
process. Prints the wall time of each and its ratio to the first, and checks that the two-process ranking
gives the same stand-alone accuracies as the one-thread single process (CPU arithmetic depends on the
thread count, so that is the pair that must agree). Run it on a quiet machine.
"""

from __future__ import annotations

import argparse
import csv
import shutil
import subprocess
import sys
import time
from pathlib import Path


def run(command: list[str]) -> float:
    print("$ " + " ".join(command), flush=True)
    started = time.perf_counter()
    subprocess.run(command, check=True)
    return time.perf_counter() - started


def accuracies(folder: Path) -> dict[str, float]:
    with open(folder / "rank.csv", newline="") as f:
        return {row["arch"]: float(row["standalone_test_acc"]) for row in csv.DictReader(f)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", required=True, type=Path)
    parser.add_argument("--archs", type=int, default=4)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--steps", type=int, default=50, help="stand-alone steps per epoch")
    args = parser.parse_args()

    hwnas = [sys.executable, "-m", "hwnas.cli"]
    supernet = args.work / "supernet"
    run([*hwnas, "train", "--space", "fbnet", "--dataset", "fashion-mnist-subset", "--width", "0.25",
         "--resolution", "16", "--epochs", "2", "--steps-per-epoch", "40", "--eval-paths", "0", "--no-progress",
         "-o", str(supernet)])
    rank = ["rank", str(supernet), "--archs", str(args.archs), "--epochs", str(args.epochs),
            "--steps-per-epoch", str(args.steps), "--no-progress", "--format", "csv"]
    ways = {
        "1 process, 2 threads": [*hwnas, *rank, "--threads", "2"],
        "1 process, 1 thread": [*hwnas, *rank, "--threads", "1"],
        "torchrun 2 processes x 1 thread": [sys.executable, "-m", "torch.distributed.run", "--standalone",
                                            "--nproc_per_node", "2", "-m", "hwnas.cli", *rank, "--threads", "1"],
    }
    seconds, results = {}, {}
    for i, (name, command) in enumerate(ways.items()):
        out = args.work / f"rank-{i}"
        shutil.rmtree(out, ignore_errors=True)
        seconds[name] = run([*command, "-o", str(out)])
        results[name] = accuracies(out)

    print(f"\nhwnas rank: {args.archs} architectures x {args.epochs} epochs x {args.steps} steps, fbnet width 0.25 "
          f"16x16, fashion-mnist-subset")
    first = next(iter(seconds.values()))
    for name, s in seconds.items():
        print(f"  {name:<34}{s:8.1f} s  {s / first:5.2f}x")
    same = results["1 process, 1 thread"] == results["torchrun 2 processes x 1 thread"]
    print(f"stand-alone accuracies of torchrun == one process with 1 thread: {same}")


if __name__ == "__main__":
    main()

"""How long does an evolutionary search take over a trained supernet, and where does the time go?

Runs `hwnas search --strategy evolution` as the library does (fresh evaluator, no cache from earlier runs)
and prints wall time, candidates evaluated per second, and the share of the time spent evaluating
(supernet path copy + BN recalibration + validation) against everything else (sampling, mutation,
crossover, constraint checks, bookkeeping, writing the search directory), side by side.

    python bench/evolution_speed.py --supernet runs/spos --table t.jsonl --target-latency 3ms
    python bench/evolution_speed.py --supernet runs/spos --table t.jsonl --population 60 --generations 20

Without --target-latency the target is the median latency of random architectures of the table.
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time

import numpy as np
import torch

from hwnas.search import Evolution, parse_latency, run_search
from hwnas.supernet.evaluator import Evaluator
from hwnas.training import open_evaluator
from hwnas.tables import LookupTable


class Timed(Evaluator):
    """Delegates to another evaluator and adds up the seconds its evaluations take."""

    def __init__(self, inner: Evaluator):
        super().__init__()
        self.inner, self.seconds = inner, 0.0

    def _evaluate(self, arch):
        start = time.perf_counter()
        accuracy = self.inner(arch)
        self.seconds += time.perf_counter() - start
        return accuracy

    def describe(self) -> dict:
        return self.inner.describe()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--supernet", required=True, help="supernet run directory (hwnas train)")
    parser.add_argument("--table", required=True, help="lookup table of the supernet's space")
    parser.add_argument("--target-latency", default=None)
    parser.add_argument("--population", type=int, default=60)
    parser.add_argument("--generations", type=int, default=20)
    parser.add_argument("--parents", type=int, default=10)
    parser.add_argument("--bn-batches", type=int, default=None)
    parser.add_argument("--val-batches", type=int, default=None)
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    table = LookupTable.load(args.table)
    space = table.space
    if args.target_latency:
        target = parse_latency(args.target_latency)
    else:
        rng = random.Random(0)
        target = float(np.median(table.predict_indices(np.array([space.indices(space.sample(rng))
                                                                  for _ in range(10000)]))))
    start = time.perf_counter()
    inner = open_evaluator(args.supernet, space=space, bn_batches=args.bn_batches, val_batches=args.val_batches,
                           batch_size=args.batch_size, device=args.device)
    supernet = inner.supernet
    setup = time.perf_counter() - start
    evaluator = Timed(inner)
    strategy = Evolution(population=args.population, generations=args.generations, parents=args.parents)
    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        result = run_search(strategy, space=space, tables=[table], target_ms=target, evaluator=evaluator,
                            seed=args.seed, output=out, references=False)
        wall = time.perf_counter() - start
    n = len(result.candidates)
    other = wall - evaluator.seconds
    described = inner.describe()
    print(f"space {space.name}/{space.profile.name} width {space.config.get('width')}  table {table.device_name}  "
          f"target {target:.4g} ms  device {next(supernet.parameters()).device}"
          f"  threads {torch.get_num_threads()}")
    print(f"evaluation: {described.get('bn_batches')} BN batches, {described.get('val_samples')} validation samples, "
          f"batch {described.get('batch_size')}; loading supernet + data {setup:.1f} s")
    print(f"{'candidates':>11}{'wall s':>9}{'cand/s':>9}{'eval s':>9}{'eval %':>8}{'other s':>9}"
          f"{'other ms/cand':>15}{'best acc %':>12}{'best ms':>9}")
    best = result.best
    print(f"{n:>11}{wall:>9.1f}{n / wall:>9.2f}{evaluator.seconds:>9.1f}{100 * evaluator.seconds / wall:>8.1f}"
          f"{other:>9.2f}{1e3 * other / n:>15.2f}{best.accuracy if best else float('nan'):>12.2f}"
          f"{best.latency_ms[0] if best else float('nan'):>9.3f}")
    for note in result.notes:
        print("note:", note)


if __name__ == "__main__":
    main()

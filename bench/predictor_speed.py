"""Search throughput with an accuracy predictor against the supernet, side by side in one run, on one thread.

    python bench/predictor_speed.py --supernet RUN --table T.jsonl --predictor P.json [--target-latency 0.8ms]

Runs evolution twice through the library, as `hwnas search` does: scored by the supernet (the demo's scoring:
4 BN batches, 8 validation batches a candidate) with a small population, and scored by the predictor with a
large one; prints candidates, seconds and candidates per second of each and their ratio. Without
--target-latency the target is the median latency of random architectures on the table.
"""

from __future__ import annotations

import argparse
import random
import time

import numpy as np
import torch

from hwnas.search import STRATEGIES, parse_latency, run_search
from hwnas.search.predictor import Predictor, PredictorEvaluator
from hwnas.tables import LookupTable
from hwnas.training import open_evaluator


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--supernet", required=True)
    parser.add_argument("--table", required=True)
    parser.add_argument("--predictor", required=True)
    parser.add_argument("--target-latency", default=None)
    parser.add_argument("--supernet-population", type=int, default=16)
    parser.add_argument("--supernet-generations", type=int, default=2)
    parser.add_argument("--predictor-population", type=int, default=1000)
    parser.add_argument("--predictor-generations", type=int, default=20)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    table = LookupTable.load(args.table)
    space = table.space
    rng = random.Random(0)
    target = parse_latency(args.target_latency) if args.target_latency else float(np.median(
        table.predict_indices(np.array([space.indices(space.sample(rng)) for _ in range(2000)]))))
    rows = []
    for name, evaluator, population, generations in (
            ("supernet", open_evaluator(args.supernet, space=space, bn_batches=4, val_batches=8, device="cpu"),
             args.supernet_population, args.supernet_generations),
            ("predictor", PredictorEvaluator(Predictor.load(args.predictor)), args.predictor_population,
             args.predictor_generations)):
        strategy = STRATEGIES.create("evolution", population=population, generations=generations,
                                     parents=max(2, population // 10))
        started = time.perf_counter()
        result = run_search(strategy, space=space, tables=[table], target_ms=target, evaluator=evaluator,
                            references=False)
        seconds = time.perf_counter() - started
        rows.append((name, len(result.candidates), seconds, len(result.candidates) / seconds))
    print(f"evolution at {target:.4g} ms on {table.device_name}, {args.threads} thread(s)")
    print(f"{'scored by':<12}{'candidates':>12}{'seconds':>10}{'candidates/s':>14}")
    for name, n, seconds, rate in rows:
        print(f"{name:<12}{n:>12}{seconds:>10.1f}{rate:>14.1f}")
    print(f"predictor / supernet: {rows[1][3] / rows[0][3]:.0f}x the candidates a second")


if __name__ == "__main__":
    main()

"""How fast is the constraint check? Architectures per second through the vectorised path (what rejection
sampling and evolution use) beside the scalar `LookupTable.predict` path, measured in one run.

    python bench/constraint_speed.py                       # synthetic tables of every space (imagenet)
    python bench/constraint_speed.py --table t.jsonl       # a measured table

The target of the issue: the vectorised constraint evaluates >= 100,000 architectures/s.
"""

from __future__ import annotations

import argparse
import random
import time

import numpy as np

from hwnas.search import Constraint
from hwnas.testing import synthetic_table
from hwnas.space import SPACES, get_space
from hwnas.tables import LookupTable


def rate(fn, n: int, repeat: int) -> float:
    """Best-of-``repeat`` architectures per second of ``fn`` over ``n`` architectures."""
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return n / best


def bench(table: LookupTable, n: int, scalar_n: int, repeat: int) -> dict:
    space = table.space
    generator = np.random.default_rng(0)
    indices = np.stack([generator.integers(0, k, n) for k in space.num_ops], axis=1)
    latencies = table.predict_indices(indices)
    median = float(np.median(latencies))
    macs = Constraint(table, median).costs_indices(indices[:1000])[:, 1]
    constraint = Constraint(table, median, max_macs=float(np.median(macs)))
    rng = random.Random(0)
    archs = [space.sample(rng) for _ in range(scalar_n)]
    return {
        "space": space.name, "device": table.device_name, "layers": len(space.layers),
        "vector_constraint": rate(lambda: constraint.feasible_indices(indices), n, repeat),
        "vector_latency": rate(lambda: table.predict_indices(indices), n, repeat),
        "scalar_predict": rate(lambda: [table.predict(a) for a in archs], scalar_n, repeat),
        "scalar_constraint": rate(lambda: [constraint.feasible(a) for a in archs], scalar_n, repeat),
        "feasible": float(constraint.feasible_indices(indices).mean()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--table", action="append", default=[], help="measured table(s); default: synthetic ones")
    parser.add_argument("--input", default="imagenet", help="input profile of the synthetic tables")
    parser.add_argument("--archs", type=int, default=200_000, help="architectures per vectorised call")
    parser.add_argument("--scalar-archs", type=int, default=2_000, help="architectures through the scalar path")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    tables = ([LookupTable.load(p) for p in args.table] if args.table
              else [synthetic_table(get_space(name, args.input)) for name in SPACES])
    print(f"{'space':<16}{'device':<12}{'layers':>6}{'constraint (vector)':>21}{'latency (vector)':>18}"
          f"{'predict (scalar)':>18}{'constraint (scalar)':>21}{'speed-up':>10}  archs/s", flush=True)
    for table in tables:
        r = bench(table, args.archs, args.scalar_archs, args.repeat)
        print(f"{r['space']:<16}{r['device']:<12}{r['layers']:>6}{r['vector_constraint']:>21,.0f}"
              f"{r['vector_latency']:>18,.0f}{r['scalar_predict']:>18,.0f}{r['scalar_constraint']:>21,.0f}"
              f"{r['vector_constraint'] / r['scalar_predict']:>9,.0f}x", flush=True)


if __name__ == "__main__":
    main()

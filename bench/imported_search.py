"""An evolution search for a Pixel 3 latency target on HW-NAS-Bench's imported table, beside the same search on
a table built on this host.

For each target (percentiles of the Pixel 3 latency of random architectures), two evolution searches of the
fbnet space (CIFAR-100 input, width 1.0):

- "pixel3 table": constrained by the imported Pixel 3 table at the target;
- "host table": constrained by a table measured here (``--host``, e.g. ``hwnas profile --space fbnet --input
  cifar100 --device ort-mobile``) at the target converted to this host's scale by the median ratio of the two
  tables over random architectures (what a user without the phone's table would do).

Each returned architecture's latency on the Pixel 3 table (HW-NAS-Bench's sum: the phone's figure) is printed
beside the host table's prediction, with whether it meets the target on the phone. Accuracy comes from
hwnas's synthetic stand-in (it grows with MACs): no CIFAR-100 supernet is trained here, so the figures are
about the latency constraint only.

    python bench/imported_search.py --host W/fbnet-c100-ort.jsonl [--percentiles 30,50,70]
"""

from __future__ import annotations

import argparse
import random

import numpy as np

from hwnas.search import STRATEGIES, run_search
from hwnas.tables import LookupTable
from hwnas.tables.imports import BUNDLED, import_hw_nas_bench
from hwnas.testing import SyntheticEvaluator


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", required=True, help="A table of fbnet / cifar100 / width 1.0 measured here.")
    parser.add_argument("--device", default="pixel3")
    parser.add_argument("--percentiles", default="30,50,70")
    parser.add_argument("--population", type=int, default=100)
    parser.add_argument("--generations", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    phone = import_hw_nas_bench(BUNDLED, args.device, "cifar100")
    host = LookupTable.load(args.host)
    space = phone.space
    host.check_built_for(space)
    rng = random.Random(args.seed)
    idx = np.array([space.indices(space.sample(rng)) for _ in range(2000)])
    p, h = phone.predict_indices(idx), host.predict_indices(idx)
    ratio = float(np.median(h / p))
    from scipy.stats import kendalltau

    print(f"{args.device} (imported) vs host table {args.host} ({host.device_name}) over 2000 random architectures: "
          f"Kendall tau {kendalltau(p, h).statistic:.3f}, median host/{args.device} ratio {ratio:.4f}")
    print(f"{'target ms':>10} {'searched on':<14}{'host target':>12}{f'{args.device} ms':>12}{'host ms':>10}"
          f"{'meets':>7}{'synthetic acc':>15}  arch")
    evaluator = SyntheticEvaluator(space)
    for q in map(float, args.percentiles.split(",")):
        target = float(np.percentile(p, q))
        for name, table, bound in ((f"{args.device} table", phone, target), ("host table", host, target * ratio)):
            strategy = STRATEGIES.create("evolution", population=args.population, generations=args.generations,
                                         parents=max(2, args.population // 5))
            result = run_search(strategy, space=space, tables=[table], target_ms=bound, evaluator=evaluator,
                                seed=args.seed, references=False)
            arch = result.best.arch
            on_phone, on_host = phone.predict(arch).latency_ms, host.predict(arch).latency_ms
            print(f"{target:>10.3f} {name:<14}{bound:>12.4f}{on_phone:>12.3f}{on_host:>10.4f}"
                  f"{'yes' if on_phone <= target * (1 + 1e-9) else 'NO':>7}{result.best.accuracy:>15.2f}  {arch}",
                  flush=True)


if __name__ == "__main__":
    main()

"""Evolution and differentiable search at the same latency targets, side by side, with every returned
architecture measured end to end on the table's device.

    python bench/search_targets.py --table demo/fbnet-fashion-mnist-ort-mobile.jsonl --supernet demo/supernet

Targets default to the 20th, 50th and 80th percentile of the table's latency over random architectures.
Both strategies start from the same trained supernet: evolution ranks candidates with it (inherited
weights, BN recalibrated); differentiable search trains a copy of it jointly with architecture parameters
under the squared hardware loss. Every returned architecture is then scored by the same evaluator (the
trained supernet) so the accuracies compare, and measured as a whole network with the table's protocol.

Prints per target and strategy: the table latency and its miss of the target, the measured latency and
measured / target, accuracy, and wall time; then the share of returned architectures whose measured
latency is within target x 1.05.
"""

from __future__ import annotations

import argparse
import random
import time

import numpy as np

from hwnas.timing.protocol import Protocol
from hwnas.profiler.session import check_same_device, table_device
from hwnas.profiler.validate import measure_archs_against_reference
from hwnas.search import STRATEGIES, run_search
from hwnas.tables import LookupTable
from hwnas.training import open_evaluator
from hwnas.training.trained import warm_start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--table", required=True)
    parser.add_argument("--supernet", required=True, help="run directory of `hwnas train`")
    parser.add_argument("--targets", default="p20,p50,p80", help="ms values, or pNN percentiles of random archs")
    parser.add_argument("--population", type=int, default=16)
    parser.add_argument("--generations", type=int, default=4)
    parser.add_argument("--diff-epochs", type=int, default=4, help="joint epochs (the temperature anneals over them)")
    parser.add_argument("--diff-steps", type=int, default=40, help="batches per differentiable epoch")
    parser.add_argument("--bn-batches", type=int, default=4)
    parser.add_argument("--val-batches", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-measure", action="store_true")
    args = parser.parse_args()

    table = LookupTable.load(args.table)
    space = table.space
    rng = random.Random(args.seed)
    random_ms = table.predict_indices(np.array([space.indices(space.sample(rng)) for _ in range(2000)]))
    targets = [round(float(np.percentile(random_ms, float(t[1:]))), 3) if t.startswith("p") else float(t)
               for t in args.targets.split(",")]
    evaluator = open_evaluator(args.supernet, space=space, bn_batches=args.bn_batches, val_batches=args.val_batches,
                               device="cpu")
    # the differentiable search starts from the supernet's weights, on its data and its own validation split
    training = {**warm_start(args.supernet), "device": "cpu"}

    rows = []
    for target in targets:
        for name in ("evolution", "differentiable"):
            if name == "evolution":
                strategy = STRATEGIES.create("evolution", population=args.population, generations=args.generations,
                                         parents=max(2, args.population // 4))
                extra = dict(evaluator=evaluator)
            else:
                strategy = STRATEGIES.create("differentiable", epochs=args.diff_epochs, warmup_epochs=0,
                                         steps_per_epoch=args.diff_steps)
                extra = dict(evaluator=None, training=training)
            start = time.perf_counter()
            result = run_search(strategy, space=space, tables=[table], target_ms=target, seed=args.seed,
                                references=False, **extra)
            seconds = time.perf_counter() - start
            best = result.best
            rows.append(dict(target=target, strategy=name, arch=best.arch, table_ms=best.latency_ms[0],
                             own_acc=best.accuracy, acc=evaluator(best.arch), seconds=seconds,
                             candidates=len(result.candidates)))
            print(f"{name} at {target:.3f} ms: {best.arch} ({seconds:.0f} s)", flush=True)

    if not args.no_measure:
        device = table_device(table)
        check_same_device(table, device)
        raw, normalised = measure_archs_against_reference(table, device, [r["arch"] for r in rows],
                                                          Protocol.from_dict(table.header["protocol"]), seed=args.seed)
        for row, ms, norm in zip(rows, raw, normalised):
            row["measured_ms"], row["normalised_ms"] = float(ms), float(norm)
    calibrated = table.calibration is not None
    print(f"\n{space.name} / {space.profile.name} {space.profile.resolution}px, table {args.table} "
          f"({table.device_name}, {'calibrated' if calibrated else 'raw block sum'}), supernet {args.supernet}")
    print("measured: whole network, raw; normalised: scaled by the table's reference block level / the reference "
          "timed beside it")
    print(f"{'target ms':>9} {'strategy':<15}{'table ms':>9}{'vs tgt':>8}{'measured':>9}{'meas/tgt':>9}"
          f"{'normalised':>11}{'norm/tgt':>9}{'acc %':>7}{'own acc':>8}{'cands':>6}{'s':>6}")
    nan = float("nan")
    for r in rows:
        measured_ms, norm_ms = r.get("measured_ms", nan), r.get("normalised_ms", nan)
        print(f"{r['target']:>9.3f} {r['strategy']:<15}{r['table_ms']:>9.3f}{100 * (r['table_ms'] / r['target'] - 1):>+7.1f}%"
              f"{measured_ms:>9.3f}{measured_ms / r['target']:>9.3f}{norm_ms:>11.3f}{norm_ms / r['target']:>9.3f}"
              f"{r['acc']:>7.2f}{r['own_acc']:>8.2f}{r['candidates']:>6}{r['seconds']:>6.0f}")
    if not args.no_measure:
        for key in ("measured_ms", "normalised_ms"):
            within = [r[key] <= 1.05 * r["target"] for r in rows]
            print(f"{key.split('_')[0]} latency <= target x 1.05: {sum(within)}/{len(within)} returned architectures "
                  f"({100 * np.mean(within):.0f} %)")


if __name__ == "__main__":
    main()

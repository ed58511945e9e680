"""`hwnas table adapt` against plain scale + offset, with 50 / 100 / 200 (or, e.g. ``--counts 10,20,50``, few)
measured networks of a target.

The target's "true" latency of a network is a distortion of the table that scale + offset cannot express:
by default (synthetic) each block's table latency times a factor per op (lognormal, sigma --op-spread) and
per stage (--stage-spread), times a per-block factor (±--block-jitter, which only the model's per-block level
can learn), stem and head at 1.3 times the table, plus a fixed offset (--offset); every network is "measured"
with --noise relative noise. With ``--table A --target B`` (two tables
of one space, e.g. measured on cpu and on ort-mobile) the truth is B's prediction and the table adapted is A.

For each count the measured networks are adapted (cross-validated figures, as the command reports them:
k-fold, leave-one-out below 5 networks per fold), and the adapted table and scale + offset fitted on all of
them are judged on --fresh other networks measured the same way ("fresh"): Kendall tau and share within ±5 %, side by side; and the same figures
against the noise-free truth, which bound what a perfect predictor would score against noisy measurements
(the mean over seeds also gives Spearman's rho against the truth, the figure HELP reports). The ridge
column gives the strengths chosen, "R" when the reduced model (the table times one scale plus an offset) was
written, and in how many of the held-out folds it was chosen.

    python bench/adapt_table.py                                   # fbnet cifar10 width 0.25, synthetic target
    python bench/adapt_table.py --table fbnet-cpu.jsonl --target fbnet-ort.jsonl
"""

from __future__ import annotations

import argparse
import random
import time

import numpy as np
import pandas as pd
from scipy.stats import spearmanr

from hwnas.space import get_space
from hwnas.tables import LookupTable
from hwnas.tables.accuracy import Errors
from hwnas.tables.adapt import adapt_table, measurements_from_frame, stage_of
from hwnas.testing.standins import synthetic_table


def distorted_truth(table: LookupTable, *, op_spread: float, stage_spread: float, block_jitter: float,
                    offset_frac: float, seed: int):
    """A function of (N, layers) op indices -> the synthetic target's true latency (ms)."""
    rng = np.random.default_rng(seed)
    space, batch, dtype = table.space, table.header["batch"], table.header["dtype"]
    ops = sorted({op for layer in space.layers for op in layer.op_names})
    stages = sorted({stage_of(layer.block(op, batch, dtype)) for layer in space.layers for op in layer.op_names})
    op_f = dict(zip(ops, np.exp(rng.normal(0, op_spread, len(ops)))))
    stage_f = dict(zip(stages, np.exp(rng.normal(0, stage_spread, len(stages)))))
    key_f = {k: 1 + block_jitter * rng.uniform(-1, 1) for k in table.records}
    fixed = sum(table.records[f.block.with_(batch=batch, dtype=dtype).key].latency_ms
                for f in space.stem + space.head)
    per_layer = []
    for layer in space.layers:
        lat = []
        for op in layer.op_names:
            block = layer.block(op, batch, dtype)
            lat.append(table.records[block.key].latency_ms * op_f[op] * stage_f[stage_of(block)] * key_f[block.key])
        per_layer.append(np.array(lat))
    typical = fixed + sum(float(np.mean(lat)) for lat in per_layer)
    offset = offset_frac * typical
    return lambda idx: offset + 1.3 * fixed + sum(lat[idx[:, i]] for i, lat in enumerate(per_layer))


def sample_indices(space, n: int, rng: random.Random) -> np.ndarray:
    seen: dict[str, list[int]] = {}
    while len(seen) < n:
        arch = space.sample(rng)
        seen.setdefault(str(arch), space.indices(arch))
    return np.array(list(seen.values()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--space", default="fbnet")
    parser.add_argument("--input", default="cifar10")
    parser.add_argument("--width", type=float, default=0.25)
    parser.add_argument("--table", default=None, help="A measured table to adapt (default: a synthetic one).")
    parser.add_argument("--target", default=None, help="A second table of the same space whose predictions are the "
                                                       "truth (default: a synthetic distortion of the table).")
    parser.add_argument("--also", action="append", default=[], metavar="TABLE",
                        help="Another table of the space (e.g. a similar device's, imported) the adaptation also "
                             "prices, as `table adapt --also` does (repeatable).")
    parser.add_argument("--counts", default="50,100,200")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--fresh", type=int, default=1000)
    parser.add_argument("--noise", type=float, default=0.01, help="Relative noise of every measurement (sd).")
    parser.add_argument("--op-spread", type=float, default=0.3)
    parser.add_argument("--stage-spread", type=float, default=0.2)
    parser.add_argument("--block-jitter", type=float, default=0.05)
    parser.add_argument("--offset", type=float, default=0.1, help="Target's fixed offset, as a share of a typical "
                                                                  "network's latency.")
    parser.add_argument("--seeds", default="0,1,2")
    args = parser.parse_args()

    table = (LookupTable.load(args.table) if args.table else
             synthetic_table(get_space(args.space, args.input, width=args.width), device="source"))
    space = table.space
    also = [LookupTable.load(path) for path in args.also]
    synthetic = f"synthetic (ops ±{args.op_spread}, stages ±{args.stage_spread}, blocks ±{args.block_jitter})"
    print(f"space {space.describe()['space']} ({space.profile.name}), table {args.table or 'synthetic'}"
          + (f" and {', '.join(args.also)}" if args.also else "") + ", target "
          f"{args.target or synthetic}, noise {100 * args.noise:.1f} %, {args.folds}-fold CV (leave-one-out below "
          f"{5 * args.folds} networks), {args.fresh} fresh networks", flush=True)
    header = (f"{'networks':>8}{'seed':>5}  {'predictor':<16}{'cv MAPE':>8}{'cv ±5%':>8}{'cv tau':>8}"
              f"{'fresh ±5%':>10}{'fresh tau':>10}{'truth ±5%':>10}{'truth tau':>10}"
              f"{'ridge op/st/grp/blk, reduced':>34}{'s':>6}{'floor':>6}{'cv':>14}{'seconds':>8}")
    print(header, flush=True)
    summary = []
    for seed in map(int, args.seeds.split(",")):
        if args.target:
            target = LookupTable.load(args.target)
            target.check_built_for(space)
            truth = target.predict_indices
        else:
            truth = distorted_truth(table, op_spread=args.op_spread, stage_spread=args.stage_spread,
                                    block_jitter=args.block_jitter, offset_frac=args.offset, seed=seed)
        rng, noise = random.Random(seed), np.random.default_rng(seed + 1000)
        counts = list(map(int, args.counts.split(",")))
        all_idx = sample_indices(space, max(counts) + args.fresh, rng)
        fresh_idx, pool = all_idx[: args.fresh], all_idx[args.fresh:]
        fresh_true = truth(fresh_idx)
        fresh_measured = fresh_true * (1 + args.noise * noise.standard_normal(len(fresh_true)))
        pool_measured = truth(pool) * (1 + args.noise * noise.standard_normal(len(pool)))
        raw_table = LookupTable(dict(table.header, calibration=None), table.records.values())
        for count in counts:
            frame = pd.DataFrame({"arch": [str(space.from_indices(i)) for i in pool[:count]],
                                  "latency_ms": pool_measured[:count]})
            start = time.perf_counter()
            result = adapt_table(table, measurements_from_frame(frame, space), folds=args.folds, seed=seed,
                                 also=also)
            seconds = time.perf_counter() - start
            scale, offset = np.polyfit(raw_table.predict_indices(pool[:count]), pool_measured[:count], 1)
            plain = scale * raw_table.predict_indices(fresh_idx) + offset
            adapted = result.table.predict_indices(fresh_idx)
            info = result.info["model"]
            for name, cv, fresh in (("scale + offset", result.baseline, plain), ("adapted", result.adapted, adapted)):
                f, t = Errors.of(fresh, fresh_measured), Errors.of(fresh, fresh_true)
                ridge = ("/".join(f"{v:.0e}" for v in info["ridge"].values()) + (" R" if info["reduced"] else "")
                         + f" {result.reduced_in}/{result.folds}" if name == "adapted" else "")
                print(f"{count:>8}{seed:>5}  {name:<16}{cv.mean_abs_pct:>8.2f}{100 * cv.within_5:>7.0f}%"
                      f"{cv.kendall_tau:>8.3f}{100 * f.within_5:>9.0f}%{f.kendall_tau:>10.3f}{100 * t.within_5:>9.0f}%"
                      f"{t.kendall_tau:>10.3f}{ridge:>34}{info['scale'] if name == 'adapted' else scale:>6.2f}"
                      f"{info['at_floor'] if name == 'adapted' else '':>6}{result.scheme:>14}{seconds:>8.1f}",
                      flush=True)
                summary.append({"networks": count, "predictor": name, "cv_tau": cv.kendall_tau,
                                "cv_within_5": cv.within_5, "fresh_tau": f.kendall_tau, "fresh_within_5": f.within_5,
                                "truth_tau": t.kendall_tau, "truth_within_5": t.within_5,
                                # Spearman's rho beside Kendall's tau: what HELP (NeurIPS 2021) reports
                                "truth_rho": float(spearmanr(fresh, fresh_true)[0]), "adapt_s": seconds})
        floor = Errors.of(fresh_true, fresh_measured)
        print(f"{'':>8}{seed:>5}  {'(noise floor)':<16}{'':>24}{100 * floor.within_5:>9.0f}%{floor.kendall_tau:>10.3f}",
              flush=True)
    frame = pd.DataFrame(summary).groupby(["networks", "predictor"], sort=False).mean()
    print("\nmean over seeds:")
    print(frame.round(3).to_string())


if __name__ == "__main__":
    main()

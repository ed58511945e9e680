"""How much of a target's block latencies a few whole-network measurements can teach: the ceiling of few-shot
`table adapt` on a target whose own table is known (e.g. HW-NAS-Bench's Pixel 3 table).

    python bench/adapt_ceiling.py --table fbnet-c100-ort.jsonl --target pixel3-c100.jsonl [--fresh 1000]

A network's latency on the target is the sum of its blocks' latencies in the target table (that is how
HW-NAS-Bench defines it). Each model below predicts a block's target latency from a few numbers per block and
a few parameters shared by all blocks:

- ``host``: the host table's latency times one scale (what `hwnas validate`'s scale + offset can do);
- ``host+macs``: plus a price per dense and per depthwise MAC (`table adapt`'s unshrunk part);
- ``host+macs+op``: plus a constant per op;
- ``physical``: no host table, only the block's dense MACs, depthwise MACs of 3x3 and of 5x5 kernels, input,
  expanded and output activation sizes, and whether it is a skip.

"oracle" fits each model's parameters to the exact latencies of 2 000 other random networks (relative least
squares, no noise): no adaptation that learns only that model's parameters can do much better. "from N" fits them
by least squares to N random networks' measured sums (1 % noise, --repeats draws), as few-shot adaptation
must. Printed: Kendall tau of each against the target's latency of --fresh other random networks.
"""

from __future__ import annotations

import argparse
import random

import numpy as np
from scipy.stats import kendalltau

from hwnas.tables import LookupTable
from hwnas.tables.adapt import Blocks


def block_features(host: LookupTable, target: LookupTable) -> tuple[Blocks, np.ndarray, dict[str, np.ndarray]]:
    """The host table's searchable blocks, the target's latency of each, and each model's feature matrix."""
    space, batch, dtype = host.space, host.header["batch"], host.header["dtype"]
    blocks = Blocks.of(host)
    spec = {}
    for layer in space.layers:
        for op in layer.op_names:
            block = layer.block(op, batch, dtype)
            spec.setdefault(blocks.keys.index(block.key), block)
    order = range(len(blocks.keys))
    host_ms = np.array([host.records[spec[k].key].latency_ms for k in order])
    target_ms = np.array([target.records[spec[k].with_(batch=target.header["batch"],
                                                       dtype=target.header["dtype"]).key].latency_ms for k in order])
    dense, depthwise = blocks.macs[:, 0] / 1e6, blocks.macs[:, 1] / 1e6
    ops = sorted({op for op, _ in blocks.labels})
    per_op = np.array([[float(op == o) for o in ops] for op, _ in blocks.labels])
    physical = []
    for k in order:
        b = spec[k]
        params = dict(b.op.params)
        expand, kernel = params.get("e") or 0, params.get("k") or 0
        skip = b.op.family != "mbconv"
        out_h, out_w = -(-b.height // b.stride), -(-b.width // b.stride)
        mid = b.cin * expand
        physical.append([dense[k], depthwise[k] * (kernel == 3), depthwise[k] * (kernel == 5),
                         b.cin * b.height * b.width / 1e5, 0 if skip else mid * b.height * b.width / 1e5,
                         0 if skip else mid * out_h * out_w / 1e5, b.cout * out_h * out_w / 1e5, float(skip)])
    models = {"host": host_ms[:, None], "host+macs": np.column_stack([host_ms, dense, depthwise]),
              "host+macs+op": np.column_stack([host_ms, dense, depthwise, per_op]), "physical": np.array(physical)}
    return blocks, target_ms, models


def sample(space, n: int, rng: random.Random) -> np.ndarray:
    return np.array([[rng.randrange(len(layer.op_names)) for layer in space.layers] for _ in range(n)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--table", required=True, help="the host table a few-shot adaptation starts from")
    parser.add_argument("--target", required=True, help="a table of the same space on the target (the truth)")
    parser.add_argument("--counts", default="10,20,50")
    parser.add_argument("--fresh", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--noise", type=float, default=0.01)
    args = parser.parse_args()
    host, target = LookupTable.load(args.table), LookupTable.load(args.target)
    target.check_built_for(host.space)
    blocks, target_ms, models = block_features(host, target)
    counts_fresh = blocks.counts(sample(host.space, args.fresh, random.Random(0)))
    truth = counts_fresh @ target_ms
    counts = [int(c) for c in args.counts.split(",")]
    print(f"{len(blocks.keys)} searchable blocks; Kendall tau against the target's latency of {args.fresh} random networks")
    print(f"{'model':<16}{'parameters':>11}{'oracle':>9}" + "".join(f"{'from ' + str(c):>10}" for c in counts))
    for name, features in models.items():
        design = np.column_stack([counts_fresh @ features, np.ones(args.fresh)])
        many = blocks.counts(sample(host.space, 2000, random.Random(1)))
        x, y = np.column_stack([many @ features, np.ones(len(many))]), many @ target_ms
        oracle = kendalltau(design @ np.linalg.lstsq(x / y[:, None], np.ones(len(y)), rcond=None)[0], truth).statistic
        few = []
        for count in counts:
            taus = []
            for repeat in range(args.repeats):
                c = blocks.counts(sample(host.space, count, random.Random(100 + repeat)))
                y = (c @ target_ms) * (1 + args.noise * np.random.default_rng(repeat).standard_normal(count))
                x = np.column_stack([c @ features, np.ones(count)])
                b = np.linalg.lstsq(x / y[:, None], np.ones(count), rcond=None)[0]
                taus.append(kendalltau(design @ b, truth).statistic)
            few.append(np.mean(taus))
        print(f"{name:<16}{features.shape[1] + 1:>11}{oracle:>9.3f}" + "".join(f"{t:>10.3f}" for t in few))


if __name__ == "__main__":
    main()

"""Table build time, measurement spread and run-to-run reproducibility.

Profiles a space twice on each device (two fresh tables) and prints, side by side: build time of each run,
median and 95th percentile IQR/median of the entries, and the median absolute difference between the two
runs' entries, drift-corrected (the tables' latencies) and uncorrected (their raw times). The space is given as
``hwnas profile`` takes it: ``--space``, ``--input``, ``--width`` (width multiplier) and ``--resolution`` (input
size, default the input profile's).

    python bench/profile_tables.py --space fbnet --input cifar10 --devices cpu,ort-mobile --out /tmp/hwnas-bench
    python bench/profile_tables.py --space fbnet --input fashion-mnist --width 0.25 --resolution 16 \
        --devices ort-mobile,litert --out /tmp/hwnas-bench
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from hwnas.devices import get_device
from hwnas.profiler.build import profile_space
from hwnas.space import get_space


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--space", default="fbnet")
    parser.add_argument("--input", default="cifar10")
    parser.add_argument("--width", type=float, default=1.0, help="width multiplier of the space")
    parser.add_argument("--resolution", type=int, default=None, help="input size (default: the input profile's)")
    parser.add_argument("--devices", default="cpu,ort-mobile")
    parser.add_argument("--out", type=Path, default=Path("/tmp/hwnas-bench"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    space = get_space(args.space, args.input, width=args.width, resolution=args.resolution)
    setting = f"{args.space}-{args.input}-w{args.width:g}-r{space.profile.resolution}"
    rows = []
    for name in args.devices.split(","):
        tables, seconds = [], []
        for run in (1, 2):
            path = args.out / f"{setting}-{name}-run{run}.jsonl"
            path.unlink(missing_ok=True)
            start = time.perf_counter()
            tables.append(profile_space(space, get_device(name), path, seed=run))
            seconds.append(time.perf_counter() - start)
        keys = list(tables[0].records)
        a = np.array([tables[0].records[k].latency_ms for k in keys])
        b = np.array([tables[1].records[k].latency_ms for k in keys])
        raw_a = np.array([tables[0].records[k].extra.get("raw_ms", a[i]) for i, k in enumerate(keys)])
        raw_b = np.array([tables[1].records[k].extra.get("raw_ms", b[i]) for i, k in enumerate(keys)])
        rel = np.array([r.rel_iqr for t in tables for r in t.records.values()])
        rows.append((name, len(keys), seconds[0], seconds[1], 100 * np.median(rel), 100 * np.percentile(rel, 95),
                     100 * np.median(np.abs(b - a) / a), 100 * np.percentile(np.abs(b - a) / a, 95),
                     100 * np.median(np.abs(raw_b - raw_a) / raw_a)))
    print(f"space {args.space} / {args.input}, width {args.width:g}, resolution {space.profile.resolution}")
    print(f"{'device':<12}{'blocks':>7}{'build s (1)':>13}{'build s (2)':>13}{'IQR/med p50':>13}"
          f"{'IQR/med p95':>13}{'run diff p50':>14}{'run diff p95':>14}{'uncorrected p50':>17}")
    for name, n, s1, s2, r50, r95, d50, d95, u50 in rows:
        print(f"{name:<12}{n:>7}{s1:>13.1f}{s2:>13.1f}{r50:>12.2f}%{r95:>12.2f}%{d50:>13.2f}%{d95:>13.2f}%"
              f"{u50:>16.2f}%")


if __name__ == "__main__":
    main()

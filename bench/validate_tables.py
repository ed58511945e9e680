"""How well do tables predict whole networks? The issue's accuracy targets, measured.

For each (space, device): build (or reuse) the table, measure N random architectures end to end, fit the
calibration on half and print the held-out figures of the raw table sum, the calibrated table and the
fitted-MACs baseline side by side. Per-architecture figures go beside each table as ``*.archs.csv``.
With ``--repeats 2`` every network is measured twice and the mean is the measured latency; the second
measurement against the first is printed as "repeat (noise floor)": no predictor can be judged closer.

    python bench/validate_tables.py --spaces fbnet,proxylessnas --devices ort-mobile,cpu --archs 100 --repeats 2
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import pandas as pd

from hwnas.devices import get_device
from hwnas.profiler.build import profile_space
from hwnas.profiler.validate import validate_table
from hwnas.space import get_space


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spaces", default="fbnet,proxylessnas")
    parser.add_argument("--input", default="cifar10")
    parser.add_argument("--devices", default="ort-mobile,cpu")
    parser.add_argument("--archs", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--out", type=Path, default=Path("/tmp/hwnas-bench"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    print(f"{'space':<14}{'device':<12}{'predictor':<20}{'MAPE %':>8}{'±5 %':>8}{'±10 %':>8}{'tau':>8}"
          f"{'scale':>8}{'offset ms':>10}{'seconds':>9}", flush=True)
    for space_name in args.spaces.split(","):
        for device_name in args.devices.split(","):
            device = get_device(device_name)
            path = args.out / f"{space_name}-{args.input}-{device_name}.jsonl"
            start = time.perf_counter()
            table = profile_space(get_space(space_name, args.input), device, path)
            report = validate_table(table, device, archs=args.archs, seed=args.seed, repeats=args.repeats)
            seconds = time.perf_counter() - start
            pd.DataFrame(report.arch_rows()).to_csv(path.with_suffix(".archs.csv"), index=False)
            for row in report.rows():
                print(f"{space_name:<14}{device_name:<12}{row['predictor']:<20}{row['mean_abs_pct_error']:>8.2f}"
                      f"{100 * row['within_5pct']:>7.0f}%{100 * row['within_10pct']:>7.0f}%{row['kendall_tau']:>8.3f}"
                      f"{report.calibration.scale:>8.3f}{report.calibration.offset_ms:>10.3f}{seconds:>9.0f}",
                      flush=True)


if __name__ == "__main__":
    main()

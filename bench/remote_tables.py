"""A table built on a target beside tables built on this host: do they agree as closely as two local builds?

    python bench/remote_tables.py --on ssh://user@127.0.0.1:2222 [--device litert --space fbnet --input cifar10
                                  --width 0.25 --resolution 16 --archs 50]

Builds, in the order local A, target R, local B (so that slow drift of the machine spreads over all three),
three tables of one space (``--space``, ``--input``, ``--width``, ``--resolution``, as ``hwnas profile`` takes
them) on ``--device`` (one a target runs: ``ort-mobile``, the default, ``ort-cpu`` or ``litert``), with the wall
time of each; prints the median and mean absolute % difference entry by entry of A vs B (the local run-to-run
difference) beside R vs A and R vs B, and the build time of R over the mean of A and B. Then validates A on this
host and R on the target with the same random architectures, and prints both reports' calibrated figures side
by side. With ``--on`` pointing at this machine over ssh, the two should agree within the local run-to-run
difference; on a real board the agreement is not expected, the point of measuring there.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from hwnas.devices import DEVICES, LiteRtDevice, OrtMobileDevice, get_device
from hwnas.profiler.build import profile_space
from hwnas.timing.protocol import Protocol
from hwnas.profiler.targets import parse_target
from hwnas.profiler.validate import validate_table
from hwnas.space import get_space
from hwnas.tables import LookupTable


def differences(a: LookupTable, b: LookupTable) -> np.ndarray:
    keys = [k for k in a.records if k in b.records]
    x = np.array([a.records[k].latency_ms for k in keys])
    y = np.array([b.records[k].latency_ms for k in keys])
    return 100 * np.abs(x - y) / y


#: the devices a target runs (`hwnas.profiler.remote.RemoteSession`): ONNX Runtime's and LiteRT
TARGET_DEVICES = [name for name in DEVICES.names() if issubclass(DEVICES.get(name), (OrtMobileDevice, LiteRtDevice))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--on", required=True, help="the target, e.g. ssh://user@127.0.0.1:2222?python=PATH")
    parser.add_argument("--space", default="fbnet")
    parser.add_argument("--input", default="cifar10")
    parser.add_argument("--width", type=float, default=1.0, help="width multiplier of the space")
    parser.add_argument("--resolution", type=int, default=None,
                        help="input size (default: the input profile's), as `hwnas profile --resolution`")
    parser.add_argument("--device", choices=TARGET_DEVICES, default="ort-mobile",
                        help="the device the three tables are measured on (default: ort-mobile)")
    parser.add_argument("--archs", type=int, default=50, help="architectures each validation measures")
    parser.add_argument("--out", default=None, help="keep the tables here (default: a temporary folder)")
    args = parser.parse_args()

    space = get_space(args.space, args.input, width=args.width, resolution=args.resolution)
    device, protocol, target = get_device(args.device), Protocol(), parse_target(args.on)
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(args.out or scratch)
        tables, seconds = {}, {}
        for name, on in (("local A", None), ("target R", target), ("local B", None)):
            start = time.perf_counter()
            tables[name] = profile_space(space, device, root / f"{name.split()[1]}.jsonl", protocol=protocol, target=on)
            seconds[name] = time.perf_counter() - start
            print(f"{name}: {len(tables[name].records)} blocks in {seconds[name]:.0f} s", flush=True)
        reports = {}
        for name, on in (("local A", None), ("target R", target)):
            start = time.perf_counter()
            reports[name] = validate_table(tables[name], device, archs=args.archs, target=on)
            print(f"validated {name} in {time.perf_counter() - start:.0f} s", flush=True)

    print(f"\n{args.space} / {args.input} width {args.width} resolution {space.profile.resolution}, {args.device}, "
          f"default protocol; target {target.url}")
    print(f"{'pair':<22}{'median abs % diff':>18}{'mean abs % diff':>17}")
    for label, (x, y) in (("A vs B (local, local)", ("local A", "local B")), ("R vs A (target, local)",
                                                                             ("target R", "local A")),
                          ("R vs B (target, local)", ("target R", "local B"))):
        d = differences(tables[x], tables[y])
        print(f"{label:<22}{np.median(d):>18.2f}{d.mean():>17.2f}")
    local = (seconds["local A"] + seconds["local B"]) / 2
    print(f"build time: local {seconds['local A']:.0f} s and {seconds['local B']:.0f} s, target "
          f"{seconds['target R']:.0f} s ({seconds['target R'] / local:.2f} x the local mean)")
    print(f"\nvalidation on {args.archs} random architectures (held-out half):")
    print(f"{'table':<12}{'predictor':<22}{'MAPE %':>8}{'within 5 %':>12}{'within 10 %':>13}{'tau':>8}")
    for name, report in reports.items():
        for row in report.rows():
            print(f"{name:<12}{row['predictor']:<22}{row['mean_abs_pct_error']:>8.2f}{row['within_5pct']:>12.3f}"
                  f"{row['within_10pct']:>13.3f}{row['kendall_tau']:>8.3f}")


if __name__ == "__main__":
    main()

"""A whole table built through the fake adb (`hwnas.testing.fake_adb`), interrupted by a dropped phone, resumed.

    python bench/adb_fake_build.py [--space spos --input cifar10 --width 0.25 --resolution 8] [--drop-after-batch 1]

Builds a ``litert`` table with real litert-torch conversions on this host and the fake phone's stand-in
``benchmark_model`` (a bash script printing the real program's output format, timings from the model file's
size): the phone drops a few commands after batch ``--drop-after-batch`` is written, the build stops with its
one-line error, the phone is plugged in again and the same build resumes. Prints the records after the
interruption and at the end, the keys missing and duplicated in the file, what is left in the phone's
/data/local/tmp after the interruption and at the end, the adb calls made and the wall times. No real phone:
this checks the bookkeeping (resume, cleanup), not latencies.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from collections import Counter
from pathlib import Path

from hwnas.devices import get_device
from hwnas.errors import TargetError
from hwnas.profiler.android import AdbSession
from hwnas.profiler.build import profile_space
from hwnas.profiler.targets import parse_target
from hwnas.space import get_space
from hwnas.testing.fake_adb import FakeAdb, write_benchmark_standin
from hwnas.timing.protocol import Protocol


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--space", default="spos")
    parser.add_argument("--input", default="cifar10")
    parser.add_argument("--width", type=float, default=0.25)
    parser.add_argument("--resolution", type=int, default=8)
    parser.add_argument("--drop-after-batch", type=int, default=1)
    args = parser.parse_args()
    space = get_space(args.space, args.input, width=args.width, resolution=args.resolution)
    protocol = Protocol(warmup_s=0.0, min_block_s=0.001, rounds=3, rotate=1, remeasure=0, calm_wait_s=0)
    with tempfile.TemporaryDirectory(prefix="hwnas-adb-bench-") as tmp:
        root = Path(tmp)
        fake = FakeAdb.create(root / "adb")
        os.environ["HWNAS_ADB"] = fake.command()
        target = parse_target(f"adb://FAKE0001?benchmark={write_benchmark_standin(root / 'benchmark_model')}")
        path = root / "t.jsonl"
        real, batches = AdbSession.measure_blocks, []

        def measure_blocks(self, *a, **k):
            result = real(self, *a, **k)
            batches.append(1)
            if len(batches) == args.drop_after_batch:
                fake.set("FAKE0001", drop_after=5)
            return result

        AdbSession.measure_blocks = measure_blocks
        start = time.perf_counter()
        try:
            profile_space(space, get_device("litert"), path, protocol=protocol, target=target)
            print("the build was not interrupted (fewer batches than --drop-after-batch)")
        except TargetError as exc:
            print(f"interrupted: {exc}")
        first_s = time.perf_counter() - start
        AdbSession.measure_blocks = real
        kept = len(path.read_text().splitlines()) - 1
        left = sorted(p.name for p in fake.tmp("FAKE0001").iterdir())
        fake.reconnect("FAKE0001")
        start = time.perf_counter()
        profile_space(space, get_device("litert"), path, protocol=protocol, target=target)
        second_s = time.perf_counter() - start
        keys = Counter(json.loads(line)["key"] for line in path.read_text().splitlines()[1:])
        wanted = {b.key for b in space.all_blocks()}
        print(f"space {args.space}/{args.input} width {args.width} resolution {args.resolution}: {len(wanted)} blocks")
        print(f"records after the interruption: {kept}; at the end: {sum(keys.values())}")
        print(f"missing: {len(wanted - set(keys))}; duplicated: {sum(1 for n in keys.values() if n > 1)}; "
              f"unknown: {len(set(keys) - wanted)}")
        print(f"phone's /data/local/tmp after the interruption: {left or 'empty'}; at the end: "
              f"{sorted(p.name for p in fake.tmp('FAKE0001').iterdir()) or 'empty'}")
        print(f"adb calls: {len(fake.calls())}; wall time: {first_s:.1f} s interrupted + {second_s:.1f} s resumed")


if __name__ == "__main__":
    main()

"""Training speed alone and beside a busy core, for several thread settings, side by side.

    python bench/busy_core.py [--space fbnet --width 0.25 --resolution 16 --steps 30]

A user's laptop always has something else running. Each setting trains one standalone architecture of the
space (as `hwnas retrain` does: channels_last, SGD, batch 128, Fashion-MNIST-shaped synthetic data) for a
few warm-up steps and then ``--steps`` timed steps, in a fresh process (thread settings and OpenMP's wait
policy only take effect at start-up), once alone and once while another process keeps one core busy
(``while True: pass``). Prints images/s for every setting and the busy/alone ratio; the settings are:

- ``torch default``: what PyTorch picks (one thread per core, OpenMP's default spin-waiting);
- ``passive wait``: as many threads, OMP_WAIT_POLICY=PASSIVE (a waiting thread sleeps instead of spinning);
- ``1 thread``;
- ``hwnas``: what `hwnas.threads.configure` picks at the start (what train/retrain/eval/search use).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

WORKER = r"""
import json, sys, time
settings = json.loads(sys.argv[1])
if settings["mode"] == "hwnas":
    from hwnas.threads import configure
    chosen = configure()
import torch
if settings["threads"]:
    torch.set_num_threads(settings["threads"])
from hwnas.space import get_space
space = get_space(settings["space"], "fashion-mnist", width=settings["width"], resolution=settings["resolution"])
arch = space.sample(__import__("random").Random(0))
torch.manual_seed(0)
net = space.build(arch).to(memory_format=torch.channels_last).train()
opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
x = torch.randn(settings["batch"], 1, settings["resolution"], settings["resolution"]).to(memory_format=torch.channels_last)
y = torch.randint(0, 10, (settings["batch"],))
loss_fn = torch.nn.CrossEntropyLoss()
def step():
    opt.zero_grad(set_to_none=True)
    loss_fn(net(x), y).backward()
    opt.step()
for _ in range(settings["warmup"]):
    step()
start = time.perf_counter()
for _ in range(settings["steps"]):
    step()
seconds = time.perf_counter() - start
print(json.dumps({"images_per_s": settings["steps"] * settings["batch"] / seconds, "threads": torch.get_num_threads()}))
"""

MODES = {"torch default": ({}, 0), "passive wait": ({"OMP_WAIT_POLICY": "PASSIVE"}, 0), "1 thread": ({}, 1),
         "hwnas": ({}, 0)}


def run(mode: str, args: argparse.Namespace) -> dict:
    env_changes, threads = MODES[mode]
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "OMP_WAIT_POLICY")}
    env.update(env_changes)
    settings = dict(mode="hwnas" if mode == "hwnas" else "plain", threads=threads, space=args.space, width=args.width,
                    resolution=args.resolution, batch=args.batch_size, steps=args.steps, warmup=args.warmup)
    done = subprocess.run([sys.executable, "-c", WORKER, json.dumps(settings)], env=env, capture_output=True,
                          text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--space", default="fbnet")
    parser.add_argument("--width", type=float, default=0.25)
    parser.add_argument("--resolution", type=int, default=16)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--modes", default=",".join(MODES))
    args = parser.parse_args()

    modes = args.modes.split(",")
    results: dict[tuple[str, str], dict] = {}
    for load in ("alone", "busy"):
        busy = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if load == "busy" else None
        try:
            if busy is not None:
                time.sleep(1.0)
            for mode in modes:
                results[mode, load] = run(mode, args)
                print(f"{mode:<14} {load:<6} {results[mode, load]['images_per_s']:8.0f} img/s "
                      f"({results[mode, load]['threads']} threads)", flush=True)
        finally:
            if busy is not None:
                busy.kill()
                busy.wait()
    print(f"\n{args.space} width {args.width}, {args.resolution}x{args.resolution}, batch {args.batch_size}, "
          f"{os.cpu_count()} cores; images/s of one standalone architecture's training steps")
    print(f"{'setting':<16}{'alone':>10}{'busy core':>12}{'busy/alone':>12}")
    for mode in modes:
        alone, busy = results[mode, "alone"]["images_per_s"], results[mode, "busy"]["images_per_s"]
        print(f"{mode:<16}{alone:>10.0f}{busy:>12.0f}{busy / alone:>12.2f}")


if __name__ == "__main__":
    main()

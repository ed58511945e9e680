"""Cost of a supernet training step against the same architecture trained as a standalone network.

    python bench/train_step.py --space fbnet --input cifar10 --width 0.5 --batch-size 64

For a few steps of `UniformSampling`, the path that step trains is also built as a standalone network
(with the same weights); both take the same batch through forward, backward and an SGD update, in
interleaved rounds so that machine noise hits both alike. Prints per-path medians, images/s and the
supernet/standalone time ratio, and beside them the cost per path of a strict-fairness step (m paths,
one update). Ratios are measured side by side in one run; absolute times depend on the machine.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from hwnas.data import build_loaders
from hwnas.training.sampling import uniform_path
from hwnas.space import get_space
from hwnas.supernet import SuperNet
from hwnas.training import OPTIMIZERS, RunConfig, StandaloneTraining, StrictFairness, UniformSampling


def timed(step) -> float:
    started = time.perf_counter()
    step()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--space", default="fbnet")
    parser.add_argument("--input", default="cifar10", help="input profile (and synthetic data shape)")
    parser.add_argument("--width", type=float, default=0.5)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--paths", type=int, default=6, help="uniform steps (paths) to compare")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    config = RunConfig(space=args.space, dataset="synthetic", synthetic_like=args.input, width=args.width,
                       batch_size=args.batch_size, eval_paths=0)
    loaders = build_loaders("synthetic", **config.loader_options())
    space = get_space(args.space, args.input, width=args.width)
    criterion = torch.nn.CrossEntropyLoss(label_smoothing=config.label_smoothing)
    images = torch.randn(args.batch_size, space.profile.channels, space.profile.resolution, space.profile.resolution)
    labels = torch.randint(space.profile.num_classes, (args.batch_size,))

    supernet = SuperNet(space)
    optimizer = OPTIMIZERS.get(config.optimizer)(supernet.parameters(), config)
    uniform = UniformSampling(space, config, loaders)
    fairness = StrictFairness(space, config, loaders)
    plain = StandaloneTraining(space, config, loaders)
    standalone = []
    for step in range(args.paths):
        arch = space.from_indices(uniform_path(space.num_ops, uniform.path_rng(step)))  # what uniform trains
        net = space.build(arch)
        net.load_state_dict(supernet.subnet(arch).state_dict())
        standalone.append((net, OPTIMIZERS.get(config.optimizer)(net.parameters(), config)))

    def supernet_step(step: int) -> float:
        return timed(lambda: uniform.step(supernet, images, labels, criterion=criterion, optimizer=optimizer,
                                          step=step))

    def standalone_step(step: int) -> float:
        net, net_optimizer = standalone[step]
        return timed(lambda: plain.step(net, images, labels, criterion=criterion, optimizer=net_optimizer,
                                        step=step))

    def fairness_step(step: int) -> float:
        return timed(lambda: fairness.step(supernet, images, labels, criterion=criterion, optimizer=optimizer,
                                           step=step))

    supernet.train()
    for step in range(args.paths):  # warm-up: the first call of each op shape sets up its kernels
        supernet_step(step), standalone_step(step), supernet_step(step), standalone_step(step)
    fairness_step(0)
    times: dict[str, list[list[float]]] = {name: [[] for _ in standalone] for name in ("supernet", "standalone")}
    fair_times = []
    for round_ in range(args.rounds):
        for step in range(args.paths):
            order = (("supernet", supernet_step), ("standalone", standalone_step))
            for name, run in order if (round_ + step) % 2 else order[::-1]:
                times[name][step].append(run(step))
        fair_times.append(fairness_step(round_ + 1))

    m = max(space.num_ops)
    print(f"{args.space} supernet, input {args.input} ({space.profile.resolution}x{space.profile.resolution}), "
          f"width {args.width}, batch {args.batch_size}, {torch.get_num_threads()} thread(s), "
          f"SGD + momentum, medians of {args.rounds} interleaved rounds\n")
    print(f"{'path':<6}{'supernet ms':>12}{'standalone ms':>15}{'ratio':>8}{'supernet img/s':>16}"
          f"{'standalone img/s':>18}")
    medians = {name: [statistics.median(t) for t in per_step] for name, per_step in times.items()}
    for step, (sup, alone) in enumerate(zip(medians["supernet"], medians["standalone"])):
        print(f"{step:<6}{sup * 1e3:>12.1f}{alone * 1e3:>15.1f}{sup / alone:>8.3f}"
              f"{args.batch_size / sup:>16.0f}{args.batch_size / alone:>18.0f}")
    sup, alone = sum(medians["supernet"]), sum(medians["standalone"])
    n = args.paths
    print(f"{'all':<6}{sup / n * 1e3:>12.1f}{alone / n * 1e3:>15.1f}{sup / alone:>8.3f}"
          f"{args.batch_size * n / sup:>16.0f}{args.batch_size * n / alone:>18.0f}")
    fair = statistics.median(fair_times)
    print(f"\nfairness step: {fair * 1e3:.1f} ms for {m} paths = {fair / m * 1e3:.1f} ms per path "
          f"({fair / m / (sup / n):.3f} x a uniform step, {args.batch_size * m / fair:.0f} path-images/s)")


if __name__ == "__main__":
    main()

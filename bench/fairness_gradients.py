"""How strict fairness should combine the gradients of its m paths: per-parameter mean (hwnas) or sum (FairNAS).

    python bench/fairness_gradients.py                # fbnet, width 0.25, Fashion-MNIST at 16 px, 150 steps

Trains four supernets from the same initial weights and prints, side by side, the training time and the
validation accuracy (best / median / worst, BN recalibrated) of the same random subnets:

- ``fairness``: `hwnas train --strategy fairness` (`StrictFairness.step`), each parameter's gradient the mean
  over the paths that used it (`hwnas.training.strategies.mean_over_users`);
- ``fairness-sum``: the same paths with their gradients summed, as FairNAS does with independent weights;
- ``uniform``: one path per step (`UniformSampling.step`), the same number of steps;
- ``uniform, same compute``: one path per step, m times as many steps (as many forward/backward passes as
  fairness).

The learning-rate schedule is cosine over each variant's steps, and the paths depend on (seed, step) only.
"""

from __future__ import annotations

import argparse
import math
import random
import statistics
import time

import torch
from torch import nn

from hwnas.data import build_loaders
from hwnas.supernet.evaluate import calibration_batches, subnet_accuracy
from hwnas.training.sampling import fair_paths
from hwnas.space import get_space
from hwnas.supernet import SuperNet
from hwnas.training import STRATEGIES, RunConfig, StrictFairness


class SummedFairness(StrictFairness):
    """The same paths as `StrictFairness`, their gradients summed (FairNAS; hwnas before the mean)."""

    def step(self, model, images, labels, *, criterion, optimizer, step):
        optimizer.zero_grad(set_to_none=True)
        for path in fair_paths(self.space.num_ops, self.path_rng(step)):
            criterion(model(images, self.space.from_indices(path)), labels).backward()
        optimizer.step()


def train_variant(variant: str, steps: int, args, loaders, space) -> tuple[SuperNet, float]:
    torch.manual_seed(args.seed)
    net = SuperNet(space).to(memory_format=torch.channels_last).train()
    optimizer = torch.optim.SGD(net.parameters(), lr=args.lr, momentum=0.9, weight_decay=4e-5)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda i: 0.5 * (1 + math.cos(math.pi * i / steps)))
    criterion = nn.CrossEntropyLoss(label_smoothing=0.1)
    # the shipped strategies (paths drawn from (seed, step)); only the summed variant is the bench's own
    config = RunConfig(space=args.space, dataset="fashion-mnist", strategy=variant.removesuffix("-sum"),
                       width=args.width, seed=args.seed, eval_paths=0)
    strategy = (SummedFairness if variant == "fairness-sum" else STRATEGIES.get(config.strategy))(space, config,
                                                                                                 loaders)
    batches = iter(loaders.train)
    started = time.perf_counter()
    for step in range(steps):
        try:
            images, labels = next(batches)
        except StopIteration:
            batches = iter(loaders.train)
            images, labels = next(batches)
        strategy.step(net, images, labels, criterion=criterion, optimizer=optimizer, step=step)
        schedule.step()
    return net.eval(), time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--space", default="fbnet")
    parser.add_argument("--width", type=float, default=0.25)
    parser.add_argument("--resolution", type=int, default=16)
    parser.add_argument("--steps", type=int, default=150, help="optimizer updates of the fairness variants")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=0.1)
    parser.add_argument("--subnets", type=int, default=8)
    parser.add_argument("--val-images", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--variants", default="fairness,fairness-sum,uniform,uniform-same-compute")
    args = parser.parse_args()

    loaders = build_loaders("fashion-mnist", batch_size=args.batch_size, resolution=args.resolution, seed=args.seed)
    space = get_space(args.space, loaders.profile, width=args.width)
    m = max(space.num_ops)
    calibration = calibration_batches(build_loaders("fashion-mnist", batch_size=args.batch_size, augment=False,
                                                    resolution=args.resolution, seed=args.seed).train, 10)
    val = torch.utils.data.DataLoader(torch.utils.data.Subset(loaders.val.dataset, range(args.val_images)),
                                      batch_size=256)
    rng = random.Random(123)
    archs = [space.sample(rng) for _ in range(args.subnets)]
    print(f"{args.space} width {args.width}, Fashion-MNIST at {args.resolution} px, batch {args.batch_size}, "
          f"lr {args.lr}, {m} paths per fairness step; {args.subnets} random subnets on {args.val_images} "
          f"validation images, BN recalibrated on 10 batches", flush=True)
    print(f"{'variant':<24}{'steps':>7}{'passes':>8}{'train s':>9}{'best':>8}{'median':>8}{'worst':>8}", flush=True)
    for variant in args.variants.split(","):
        steps = args.steps * m if variant == "uniform-same-compute" else args.steps
        net, seconds = train_variant("uniform" if variant.startswith("uniform") else variant, steps, args, loaders,
                                     space)
        accs = [subnet_accuracy(net, arch, val, calibration=calibration) for arch in archs]
        passes = steps * (m if variant.startswith("fairness") else 1)
        print(f"{variant:<24}{steps:>7}{passes:>8}{seconds:>9.0f}{max(accs):>7.1f}%{statistics.median(accs):>7.1f}%"
              f"{min(accs):>7.1f}%", flush=True)


if __name__ == "__main__":
    main()

"""Train an FBNet supernet (uniform or strict-fairness sampling) on Fashion-MNIST, then judge 20 random
subnets with and without BN recalibration.

    python bench/fashion_mnist_supernet.py --run-dir /tmp/fmnist-supernet
    torchrun --standalone --nproc_per_node 2 bench/fashion_mnist_supernet.py --run-dir /tmp/fmnist-supernet

Prints the training wall time and the best / median / worst validation accuracy of the subnets, with
inherited BN statistics beside recalibrated ones. A finished run directory is not trained again, so a
second call only re-evaluates. Under torchrun every rank trains and rank 0 evaluates.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time

import torch

from hwnas.training import RunConfig, open_evaluator, read_log, train


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run-dir", required=True)
    parser.add_argument("--dataset", default="fashion-mnist")
    parser.add_argument("--width", type=float, default=0.25)
    parser.add_argument("--resolution", type=int, default=None, help="resize the 28x28 images (default: keep)")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=0.1)
    parser.add_argument("--eval-paths", type=int, default=2, help="paths validated after every epoch")
    parser.add_argument("--bn-batches", type=int, default=10)
    parser.add_argument("--subnets", type=int, default=20)
    parser.add_argument("--threads", type=int, default=1, help="torch threads per process")
    parser.add_argument("--strategy", default="uniform", choices=["uniform", "fairness"])
    parser.add_argument("--weight-sharing", default="entangled", choices=["entangled", "independent"])
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    config = RunConfig(space="fbnet", dataset=args.dataset, strategy=args.strategy, width=args.width,
                       resolution=args.resolution, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                       eval_paths=args.eval_paths, bn_batches=args.bn_batches, weight_sharing=args.weight_sharing)
    started = time.perf_counter()
    result = train(config, args.run_dir, on_epoch=lambda stats: print(stats.summary(config.epochs), flush=True))
    if result.rank != 0:
        return
    wall = time.perf_counter() - started
    log = read_log(args.run_dir)

    started = time.perf_counter()
    evaluator = open_evaluator(args.run_dir, bn_batches=args.bn_batches, device="cpu")
    rng = random.Random(0)
    archs = [evaluator.space.sample(rng) for _ in range(args.subnets)]
    inherited = [evaluator.accuracy(arch, recalibrate=False) for arch in archs]
    recalibrated = [evaluator.accuracy(arch) for arch in archs]
    evaluation = time.perf_counter() - started

    space = result.space
    print(f"\nfbnet supernet ({args.strategy}), width {args.width}, "
          f"input {space.profile.channels}x{space.profile.resolution}"
          f"x{space.profile.resolution}, {len(space.layers)} layers x {max(space.num_ops)} ops, "
          f"{sum(p.numel() for p in result.model.parameters()) / 1e6:.2f}M parameters")
    print(f"{args.dataset}: {len(evaluator.val_loader.dataset)} validation images (held out of the training "
          f"split); batch {args.batch_size} per process, lr {args.lr}, {torch.get_num_threads()} thread(s)")
    print(f"training: {len(log)} epochs, {sum(row['wall_s'] for row in log):.0f} s summed over the epochs "
          f"(this call: {wall:.0f} s, {len(result.history)} epochs); last epoch "
          f"{log[-1]['images_per_s']:.0f} img/s, train acc {log[-1]['train_acc']:.2f} %")
    print(f"evaluation of {len(archs)} random subnets ({args.bn_batches} BN batches of {args.batch_size}): "
          f"{evaluation:.0f} s")
    print(f"{'validation accuracy %':<22}{'best':>8}{'median':>8}{'worst':>8}")
    for name, accs in (("inherited BN", inherited), ("recalibrated BN", recalibrated)):
        print(f"{name:<22}{max(accs):>8.2f}{statistics.median(accs):>8.2f}{min(accs):>8.2f}")


if __name__ == "__main__":
    main()

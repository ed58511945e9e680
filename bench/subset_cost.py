"""What training on the embedded Fashion-MNIST subset costs, beside the full data set, with the demo's recipe.

    python bench/subset_cost.py [--epochs 10 --steps-per-epoch 70 --subnets 5]

Trains one uniform fbnet supernet (width 0.25, 16x16, the demo's settings) on ``fashion-mnist-subset``
(10 000 training images) and one on the full ``fashion-mnist`` (60 000; needs it installed, e.g. Debian's
dataset-fashion-mnist), the same number of steps each, then scores the same ``--subnets`` random
architectures with each supernet (inherited weights, BN recalibrated on its own training batches): on its own
validation split, and on the official test split of the full data set (10 000 images), which neither saw.
Prints the accuracies side by side and the training time of each.
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from pathlib import Path

from hwnas.data import build_loaders
from hwnas.supernet import subnet_accuracy
from hwnas.threads import configure
from hwnas.training import RunConfig, open_evaluator, train


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--steps-per-epoch", type=int, default=70)
    parser.add_argument("--subnets", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None, help="keep the run directories here (default: a temporary folder)")
    args = parser.parse_args()

    threads = configure()
    full_test = build_loaders("fashion-mnist", batch_size=256, resolution=16).test
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(args.out or scratch)
        scores, seconds = {}, {}
        for dataset in ("fashion-mnist-subset", "fashion-mnist"):
            config = RunConfig(space="fbnet", dataset=dataset, strategy="uniform", width=0.25, resolution=16,
                               epochs=args.epochs, steps_per_epoch=args.steps_per_epoch, batch_size=128, lr=0.1,
                               seed=args.seed, eval_paths=0, bn_batches=4)
            start = time.perf_counter()
            train(config, root / dataset)
            seconds[dataset] = time.perf_counter() - start
            evaluator = open_evaluator(root / dataset, device="cpu")
            archs = [evaluator.space.sample(random.Random(args.seed + i)) for i in range(args.subnets)]
            scores[dataset] = [(evaluator.accuracy(a), subnet_accuracy(evaluator.supernet, a, full_test,
                                                                       calibration=evaluator.calibration))
                               for a in archs]
            scores[dataset + " val"] = len(evaluator.val_loader.dataset)
    print(f"\nfbnet width 0.25, 16x16, uniform, {args.epochs} epochs x {args.steps_per_epoch} steps of 128 images, "
          f"{threads} thread(s); {args.subnets} random subnets, BN recalibrated on 4 training batches")
    print(f"{'subnet':<8}{'subset: own val':>16}{'full test':>11}{'full: own val':>15}{'full test':>11}")
    for i in range(args.subnets):
        (sv, st), (fv, ft) = scores["fashion-mnist-subset"][i], scores["fashion-mnist"][i]
        print(f"{i:<8}{sv:>15.2f}%{st:>10.2f}%{fv:>14.2f}%{ft:>10.2f}%")
    for name, k in (("median", statistics.median), ("mean", statistics.fmean)):
        col = [k([s[j] for s in scores[d]]) for d in ("fashion-mnist-subset", "fashion-mnist") for j in (0, 1)]
        print(f"{name:<8}{col[0]:>15.2f}%{col[1]:>10.2f}%{col[2]:>14.2f}%{col[3]:>10.2f}%")
    print(f"validation images: subset {scores['fashion-mnist-subset val']}, full {scores['fashion-mnist val']}; "
          f"test images: 10000 (the full set's test split, for both)")
    print(f"training time: subset {seconds['fashion-mnist-subset']:.0f} s, full {seconds['fashion-mnist']:.0f} s")


if __name__ == "__main__":
    main()

"""How far the stand-alone truth of a bench can be trusted, and what its goals then ask of an estimator and a search.

    python bench/truth_noise.py RANK_OR_REPORT_DIR... [--target-se 2]

Reads every stand-alone training of the given `hwnas rank` and `hwnas report` directories (their
``runs/*/result.json``: one per architecture and seed) and prints, per directory, per latency band of a report
(the random architectures near one found architecture) and pooled over the distinct architectures of all of
them: the noise of one training (sd between an architecture's seeds), the sd of the architectures' means, the
part of it that is not noise, and from these (`hwnas.judge.agreement.reliability`) the Kendall tau a perfect
estimator would reach against the means of 24 architectures (the ceiling of any estimator's tau on such a
bench), that of a second training of the same architectures, and MACs' own tau.

For each band it then asks what "the found architecture beats the best of K random ones by more than
``--target-se`` standard errors" needs at this noise: simulating architectures with the band's signal and noise
(normal), the share of the band's architectures whose expected accuracy is high enough to win that comparison
at least half the time. A share far below 1 / (the candidates a search can tell apart) means the goal is out of
reach of any estimator at this setting, however good.
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import kendalltau, norm

from hwnas.judge.agreement import reliability


def trainings(folder: Path) -> dict[str, dict[int, float]]:
    """Test accuracy by architecture and seed of the stand-alone trainings under ``folder``."""
    found: dict[str, dict[int, float]] = defaultdict(dict)
    for path in sorted(folder.glob("runs/*/result.json")):
        result = json.loads(path.read_text())
        found[result["arch"]][result["recipe"]["seed"]] = float(result["test_acc"])
    return found


def macs(folder: Path) -> dict[str, float]:
    out = {}
    for name in ("rank.csv", "report.csv"):
        if (folder / name).exists():
            frame = pd.read_csv(folder / name)
            out.update(dict(zip(frame["arch"], frame["macs"])))
    return out


def line(label: str, accs: dict[str, dict[int, float]], sizes: dict[str, float]) -> dict | None:
    lists = [list(v.values()) for v in accs.values()]
    truth = reliability(lists)
    if truth is None:
        print(f"{label:<40} {len(lists):>5}  (fewer than 3 architectures or one seed each)")
        return None
    means = [np.mean(v) for v in lists]
    known = [(sizes[a], m) for a, m in zip(accs, means) if a in sizes]
    by_macs = kendalltau(*zip(*known)).statistic if len(known) > 2 else float("nan")
    print(f"{label:<40} {truth.n:>5} {truth.seeds:>5.1f} {truth.noise_sd:>8.2f} {truth.spread_sd:>8.2f} "
          f"{truth.signal_sd:>8.2f}   {truth.ceiling.text():<20} {truth.repeat:>6.2f} {by_macs:>6.2f}")
    return {"signal": truth.signal_sd, "noise": truth.noise_sd, "seeds": truth.seeds}


def share_that_wins(signal: float, noise: float, seeds: int, k: int, target_se: float, rng: np.random.Generator,
                    trials: int = 4000) -> float:
    """The share of a band's architectures (expected accuracy ~ N(0, signal)) whose measured mean beats the best
    measured mean of ``k`` random ones by more than ``target_se`` standard errors of the difference in at least
    half of ``trials``, each mean over ``seeds`` trainings of sd ``noise``."""
    if signal <= 0:
        return 0.0
    se_mean = noise / np.sqrt(seeds)
    margin = target_se * np.sqrt(2) * se_mean
    best = (rng.normal(0, signal, (trials, k)) + rng.normal(0, se_mean, (trials, k))).max(1)
    grid = np.linspace(0, 6, 601)
    wins = [np.mean(z * signal + rng.normal(0, se_mean, trials) - best > margin) for z in grid]
    needed = grid[np.argmax(np.array(wins) >= 0.5)] if max(wins) >= 0.5 else np.inf
    return float(norm.sf(needed))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folders", nargs="+", type=Path, help="hwnas rank or report directories")
    parser.add_argument("--target-se", type=float, default=2.0, help="the margin of the goal, in standard errors")
    parser.add_argument("--random", type=int, default=8, help="K: random architectures the found one must beat")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    print(f"{'stand-alone truth':<40} {'archs':>5} {'seeds':>5} {'1 run sd':>8} {'means sd':>8} {'signal':>8}   "
          f"{'perfect estimator tau':<20} {'repeat':>6} {'macs':>6}")
    pooled: dict[str, dict[int, float]] = defaultdict(dict)
    sizes: dict[str, float] = {}
    bands = []
    for folder in args.folders:
        accs, size = trainings(folder), macs(folder)
        sizes.update(size)
        for arch, by_seed in accs.items():
            pooled[arch].update(by_seed)
        line(str(folder), accs, size)
        if (folder / "report.csv").exists():
            report = pd.read_csv(folder / "report.csv")
            for near, group in report[report["kind"] == "random"].groupby("near"):
                band = {a: accs[a] for a in group["arch"] if a in accs}
                stats = line(f"  band near {near}", band, size)
                if stats:
                    bands.append((f"{folder}: {near}", stats))
    line(f"pooled ({len(pooled)} distinct architectures)", pooled, sizes)
    if bands:
        print(f"\nthe found architecture beats the best of {args.random} random ones by > {args.target_se:g} SE "
              f"(half the time) only from the top share of its band, with 2 / 4 / 8 seeds each:")
        for name, s in bands:
            shares = [share_that_wins(s["signal"], s["noise"], seeds, args.random, args.target_se, rng)
                      for seeds in (2, 4, 8)]
            said = " / ".join("none" if share == 0 else f"1 in {1 / share:.3g}" for share in shares)
            print(f"  {name:<55} signal sd {s['signal']:.2f}, one run's noise {s['noise']:.2f}: {said}")


if __name__ == "__main__":
    main()

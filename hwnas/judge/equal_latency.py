"""Found architectures judged at equal latency (`hwnas report`): against random architectures of the same
table latency, and against a reference architecture by a search whose target was that reference's latency.

Random architectures: for each found one, ``k`` drawn uniformly from the space among those whose latency on
the report's table lies within ``band`` of the found one's (`hwnas.judge.selection.in_band`), trained with
the same recipe. The found one is compared with the best of them by stand-alone accuracy: choosing the best
after training favours the random side (its accuracy is the maximum of k noisy measurements), so a found
architecture that beats it beats random search of k trainings at that latency.

Intervals: every architecture is trained ``seeds`` times; the standard deviation of one training is pooled
over every architecture of the report (each contributes seeds - 1 degrees of freedom), and the difference of
two means of ``seeds`` trainings has the standard error sd * sqrt(2 / seeds). The 95 % interval uses the t
distribution with the pooled degrees of freedom. With one training each there is no interval.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy.stats import t as student_t

from hwnas.judge.selection import in_band
from hwnas.space import SearchSpace
from hwnas.tables import LookupTable

#: a search's target counts as a reference's latency when within this share of it
SAME_TARGET = 0.005


def random_entries(found: Sequence[dict], spaces: dict[str, SearchSpace], table: LookupTable, k: int, band: float,
                   seed: int) -> list[dict]:
    """``k`` random architectures within ``band`` of each found architecture's latency on ``table`` (entries
    of a report's plan: kind ``random``, ``near`` the found entry's name)."""
    out: list[dict] = []
    taken = {e["arch"] for e in found}
    for i, entry in enumerate(found):
        space = spaces[entry["space"]]
        if table.header["space"].get("space") != space.name:
            continue
        ms = float(table.predict_indices(np.array([space.indices(space.validate(entry["arch"]))]))[0])
        archs = in_band(space, table, ms * (1 - band), ms * (1 + band), k, seed + i, exclude=taken)
        taken.update(str(a) for a in archs)
        out += [{"kind": "random", "name": f"random {j + 1} near {entry['name']}", "space": entry["space"],
                 "arch": str(a), "near": entry["name"]} for j, a in enumerate(archs)]
    return out


def pooled_sd(accs: Sequence[Sequence[float]]) -> tuple[float, int]:
    """The standard deviation of one training pooled over architectures trained several times, and its
    degrees of freedom (NaN and 0 when none was)."""
    groups = [np.asarray(a, float) for a in accs if len(a) > 1]
    df = sum(len(g) - 1 for g in groups)
    if not df:
        return math.nan, 0
    return float(math.sqrt(sum(((g - g.mean()) ** 2).sum() for g in groups) / df)), df


def difference(a: float, b: float, sd: float, df: int, seeds: int) -> dict[str, float]:
    """a - b (means of ``seeds`` trainings each) with its standard error and 95 % interval."""
    diff = a - b
    if not df or math.isnan(sd):
        return {"difference": diff, "se": math.nan, "low": math.nan, "high": math.nan}
    se = sd * math.sqrt(2 / seeds)
    half = float(student_t.ppf(0.975, df)) * se
    return {"difference": diff, "se": se, "low": diff - half, "high": diff + half}


def verdict(diff: dict[str, float], other: str) -> str:
    if math.isnan(diff["se"]):
        return "no interval: one training each (--seeds 2 gives one)"
    if diff["low"] > 0:
        margin = diff["difference"] / diff["se"]
        return f"beats {other} ({margin:.1f} standard errors)"
    if diff["high"] < 0:
        return f"loses to {other}"
    return f"not told apart from {other} (the interval includes 0)"


def comparisons(rows: list[dict], accs: dict[str, Sequence[float]], targets: dict[str, list[float]],
                reference_ms: dict[str, float], seeds: int) -> list[dict[str, Any]]:
    """One row per comparison at equal latency: each found architecture against the best of its random
    neighbours, and against every reference whose table latency a search that returned it was targeted at.
    ``rows`` are the report's rows (kind, name, test_acc, latency); ``accs`` every entry's test accuracies by
    name; ``targets`` the targets (ms) of the searches behind each found name; ``reference_ms`` the references'
    table latencies."""
    sd, df = pooled_sd(list(accs.values()))
    by_name = {r["name"]: r for r in rows}
    out = []
    for row in (r for r in rows if r["kind"] == "found"):
        near = [r for r in rows if r["kind"] == "random" and r.get("near") == row["name"]]
        if near:
            best = max(near, key=lambda r: r["test_acc"])
            beaten = sum(row["test_acc"] > r["test_acc"] for r in near)
            d = difference(row["test_acc"], best["test_acc"], sd, df, seeds)
            out.append({"found": row["name"], "against": f"best of {len(near)} random at equal latency",
                        "against_name": best["name"], "found_acc": row["test_acc"], "against_acc": best["test_acc"],
                        **d, "beats_random": f"{beaten} of {len(near)}",
                        "verdict": verdict(d, f"the best of {len(near)} random architectures")})
        for ref, ms in reference_ms.items():
            if ref not in by_name or math.isnan(ms):
                continue
            if any(abs(t - ms) <= SAME_TARGET * ms for t in targets.get(row["name"], [])):
                other = by_name[ref]
                d = difference(row["test_acc"], other["test_acc"], sd, df, seeds)
                out.append({"found": row["name"], "against": f"{ref} (searched at its latency)", "against_name": ref,
                            "found_acc": row["test_acc"], "against_acc": other["test_acc"], **d,
                            "beats_random": None, "verdict": verdict(d, ref)})
    for entry in out:
        entry["sd_one_training"] = sd
        entry["df"] = df
    return out

"""The results of searches as a paper reports them (`hwnas report`): the architecture each search returned,
trained stand-alone from scratch with one recipe beside the reference architectures of its space (FBNet-A/B/C
for fbnet, ProxylessNAS-Mobile and MobileNetV2 for proxylessnas, ...), at the same data, input profile and
width, with their test accuracy, table latency and, on request, latency measured on the table's device.

The data is the one the searches were scored on: that of the supernet run a search's evaluator names (or of
the supernet a differentiable search trained, ``SEARCH_DIR/supernet``); every search of a report must share
it. Searches that returned the same architecture share one training. The latency columns are those of the
first search's tables. Beside each found architecture, random architectures of equal table latency are
trained too, and the found one is compared with the best of them and with each reference whose latency a
search that returned it was targeted at (`hwnas.judge.equal_latency`: ``hwnas search --target-latency FBNet-A``).
``REPORT_DIR`` holds ``plan.json`` (what is trained, fixed on the first call), ``runs/NNN-<digest>/`` (one
resumable training each; see `hwnas.judge.standalone`), ``report.csv`` (one row per network),
``comparisons.csv`` (one row per comparison at equal latency, with its interval), ``report.json`` (both, and
the settings) and the chart.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from hwnas import __version__
from hwnas.errors import ConfigError
from hwnas.files import dump_json, write_atomic
from hwnas.outputs import check_output_dir, dir_lock
from hwnas.progress import ProgressCallback
from hwnas.search.results import TRAINING_RUN, SearchRecord, expand_search_dirs, latency_column, load_search
from hwnas.search.runner import reference_latency
from hwnas.judge.equal_latency import comparisons, random_entries
from hwnas.judge.standalone import Recipe, job, saved_plan, share, train_standalone
from hwnas.space import REFERENCES, SearchSpace, find_reference, space_from_description
from hwnas.space.cost import arch_cost
from hwnas.tables import LookupTable

PLAN, REPORT_CSV, REPORT_JSON, RUNS = "plan.json", "report.csv", "report.json", "runs"
COMPARISONS_CSV = "comparisons.csv"
COMPARISON_COLUMNS = ["found", "against", "against_name", "found_acc", "against_acc", "difference", "se", "low", "high",
                      "beats_random", "verdict", "sd_one_training", "df"]


@dataclass
class Report:
    path: Path
    rows: pd.DataFrame
    labels: list[str]
    measured: str | None
    config: dict
    comparisons: list[dict] = field(default_factory=list)


def searched_data(record: SearchRecord) -> dict[str, Any]:
    """The data settings (`hwnas.training.trained.data_settings`) a search scored its candidates on."""
    from hwnas.training.run_dir import read_run
    from hwnas.training.trained import data_settings

    evaluator = record.config.get("evaluator") or {}
    rescorer = (record.config.get("rescore") or {}).get("evaluator") or {}
    # a supernet scored the candidates, or re-scored a predictor's best, or taught the predictor
    run_dir = next((d.get(key) for d, key in ((evaluator, "run_dir"), (rescorer, "run_dir"),
                                               (evaluator.get("fitted_on") or {}, "supernet"))
                    if isinstance(d, dict) and d.get(key)), None) if isinstance(evaluator, dict) else None
    if run_dir is None and (record.path / TRAINING_RUN).is_dir():
        run_dir = record.path / TRAINING_RUN
    stored = read_run(run_dir) if run_dir is not None and Path(run_dir).is_dir() else None
    if stored is None:
        raise ConfigError(f"a report retrains on the data a search was scored on, but search {record.path} names no "
                          f"supernet run that still exists ({run_dir or 'none'})")
    return data_settings(stored.config)


def plan_entries(records: Sequence[SearchRecord], references: bool | Sequence[str]) -> list[dict]:
    """What to train: each distinct returned architecture (named by the searches that returned it), then the
    references of each space (``references``: all, none, or those named)."""
    if not isinstance(references, bool):
        spaces = {r.config["space"]["space"] for r in records}
        for name in references:
            ref = find_reference(name)
            if ref is None or ref.space not in spaces:
                known = sorted(n for n in REFERENCES if REFERENCES.get(n).space in spaces)
                raise ConfigError(f"--reference must name a reference of the searched space ({', '.join(sorted(spaces))}:"
                                  f" {', '.join(known)}), but got {name!r}")
        wanted = {find_reference(n).name for n in references}
    found: dict[tuple[str, str], list[str]] = {}
    for record in records:
        if record.best is None:
            raise ConfigError(f"a report needs the architecture each search returned, but search {record.path} "
                              f"returned none (no feasible candidate)")
        found.setdefault((record.config["space"]["space"], record.best["arch"]), []).append(record.name)
    plan = [{"kind": "found", "name": ", ".join(names), "space": space, "arch": arch}
            for (space, arch), names in found.items()]
    if references:
        for space in dict.fromkeys(space for space, _ in found):
            plan += [{"kind": "reference", "name": name, "space": space, "arch": name}
                     for name in REFERENCES if REFERENCES.get(name).space == space
                     and (isinstance(references, bool) or name in wanted)]
    return plan


def _space_and_arch(entry: dict, space: SearchSpace) -> tuple[SearchSpace, Any]:
    """The space an entry is built in at the searches' input profile and width, and its architecture."""
    if entry["kind"] == "reference":
        ref = find_reference(entry["arch"])
        ref_space = ref.build_space(space.profile, width=space.config.get("width", 1.0))
        return ref_space, ref_space.validate(ref.arch)
    return space, space.validate(entry["arch"])


def report_searches(searches: Sequence[str | Path], recipe: Recipe, output: str | Path, *,
                    references: bool | Sequence[str] = True,
                    measured: bool = False, data_root: str | None = None, seeds: int = 1, random: int = 8,
                    band: float = 0.05, reuse: Sequence[str | Path] = (),
                    on_progress: ProgressCallback | None = None) -> Report | None:
    """Train and report (see the module docstring); under torchrun every process calls this and trains its
    share, and the report is returned on rank 0 (None elsewhere). ``random`` architectures within ``band`` of
    each found one's table latency are trained beside it (`hwnas.judge.equal_latency`); ``seeds`` and ``reuse``
    as in `hwnas.judge.rank.rank_supernet`."""
    if not isinstance(random, int) or random < 0:
        raise ConfigError(f"random architectures per found one must be an integer >= 0, but got random={random!r}")
    if not 0 < band < 1:
        raise ConfigError(f"the latency band must lie in (0, 1), but got band={band}")
    records = [load_search(p) for p in expand_search_dirs(searches)]
    if not records:
        raise ConfigError("a report needs at least one search directory, but got none")
    datas = [searched_data(r) for r in records]
    for record, data in zip(records[1:], datas[1:]):
        if data != datas[0]:
            diffs = [f"{k} {data.get(k)!r} != {datas[0].get(k)!r}" for k in sorted(data) if data.get(k) != datas[0].get(k)]
            raise ConfigError(f"the searches of one report must be scored on the same data, but {record.path} differs "
                              f"from {records[0].path}: {'; '.join(diffs[:3])}")
    data = {**datas[0], **({"data_root": data_root} if data_root else {})}
    spaces = {r.config["space"]["space"]: space_from_description(r.config["space"]) for r in records}
    tables = [LookupTable.load(t["path"]) if t.get("path") and Path(t["path"]).is_file() else None
              for t in records[0].config["tables"]]
    labels = records[0].labels
    if measured and tables[0] is None:
        raise ConfigError(f"--measured times the networks on the first table's device, but the table of search "
                          f"{records[0].path} is gone ({records[0].config['tables'][0].get('path')})")
    if random and tables[0] is None:
        raise ConfigError(f"random architectures of equal latency are drawn by the first table, but the table of "
                          f"search {records[0].path} is gone ({records[0].config['tables'][0].get('path')}); give "
                          f"--random 0")
    path = check_output_dir(output, "a report directory", "report")
    config = {"searches": [str(r.path.resolve()) for r in records], "data": data, "recipe": recipe.settings(),
              "references": references if isinstance(references, bool) else list(references),
              **({"seeds": seeds} if seeds > 1 else {}),
              **({"random": random, "band": band} if random else {})}

    def plan() -> list[dict]:
        entries = plan_entries(records, references)
        found = [e for e in entries if e["kind"] == "found"]
        return [*found, *(random_entries(found, spaces, tables[0], random, band, recipe.seed) if random else []),
                *(e for e in entries if e["kind"] != "found")]

    for entry in plan_entries(records, references):  # bad settings: before any work
        recipe.run_config(entry["space"], entry["arch"], data)
    with job() as (rank, world):
        if rank == 0:
            path.mkdir(parents=True, exist_ok=True)
        with dir_lock(path, "report directory") if rank == 0 else nullcontext():
            entries = share(world, saved_plan(path / PLAN, "hwnas-report-plan", config, plan) if rank == 0 else None)
            trained = train_standalone([(e["space"], e["arch"]) for e in entries], recipe, data, path / RUNS,
                                       seeds=seeds, on_progress=on_progress, rank=rank, world=world,
                                       reuse=[Path(f) / RUNS for f in reuse])
            if rank != 0:
                return None
            rows = []
            for entry, done in zip(entries, trained):
                space, arch = _space_and_arch(entry, spaces[entry["space"]])
                cost = arch_cost(space, arch)
                row = {"kind": entry["kind"], "name": entry["name"], "arch": str(arch), "test_acc": done.test_acc,
                       "val_acc": done.val_acc, **({"test_acc_sd": done.test_acc_sd} if seeds > 1 else {}),
                       **({"near": entry.get("near")} if random else {})}
                row.update({latency_column(label): math.nan if table is None else reference_latency(table, space, arch)
                            for label, table in zip(labels, tables)})
                row.update({"macs": cost.macs, "params": cost.params, "run": str(done.run_dir.relative_to(path))})
                rows.append(row)
            frame = pd.DataFrame(rows)
            column = None
            if measured:
                column = f"measured_ms[{labels[0]}]"
                frame[column] = _measure(tables[0], entries, spaces, on_progress)
            compared = comparisons(rows, {e["name"]: d.test_accs for e, d in zip(entries, trained)},
                                   _targets(records), _reference_ms(rows, labels[0]), seeds)
            write_atomic(path / REPORT_CSV, frame.to_csv(index=False))
            write_atomic(path / COMPARISONS_CSV, pd.DataFrame(compared, columns=COMPARISON_COLUMNS).to_csv(index=False))
            write_atomic(path / REPORT_JSON, dump_json({"kind": "hwnas-report", "version": 2, "hwnas": __version__,
                                                        **config, "tables": labels, "rows": rows,
                                                        "comparisons": compared}, nan_as_null=True, indent=2) + "\n")
            return Report(path, frame, labels, column, config, compared)


def _targets(records: Sequence[SearchRecord]) -> dict[str, list[float]]:
    """The targets (ms) of the searches behind each found entry, by the entry's name: the names of the searches
    that returned the same architecture, joined (as `plan_entries` names it)."""
    found: dict[tuple[str, str], list[SearchRecord]] = {}
    for record in records:
        if record.best is not None:
            found.setdefault((record.config["space"]["space"], record.best["arch"]), []).append(record)
    return {", ".join(r.name for r in group): [r.target_ms for r in group] for group in found.values()}


def _reference_ms(rows: list[dict], label: str) -> dict[str, float]:
    return {r["name"]: float(r[latency_column(label)]) for r in rows if r["kind"] == "reference"}


def _measure(table: LookupTable, plan: list[dict], spaces: dict[str, SearchSpace],
             on_progress: ProgressCallback | None) -> np.ndarray:
    """Each entry built as a whole network, in its own space at the table's input profile (a reference of
    other channels too, which the table cannot predict), and timed on the table's device with its protocol,
    as `hwnas validate` measures; NaN for an entry of another space than the table's."""
    from hwnas.timing.protocol import Protocol
    from hwnas.profiler.session import check_same_device, table_device
    from hwnas.profiler.validate import check_measurable, measure_archs

    check_measurable(table)
    device = table_device(table)
    check_same_device(table, device)
    indices, archs, built_in = [], [], []
    for i, entry in enumerate(plan):
        if entry["space"] != table.space.name:
            continue
        space, arch = _space_and_arch(entry, spaces[entry["space"]])
        indices.append(i)
        archs.append(arch)
        built_in.append(space)
    out = np.full(len(plan), np.nan)
    if archs:
        out[indices] = measure_archs(table, device, archs, Protocol.from_dict(table.header["protocol"]),
                                     on_progress=on_progress, spaces=built_in)
    return out

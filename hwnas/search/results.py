"""A search directory on disk: what a search writes, how it resumes, and how plots and exports read it.

``SEARCH_DIR`` holds

- ``config.json``: strategy and settings, seed, space, constraint, tables (label, path, device,
  digest), evaluator; a search resumes only into a directory whose configuration matches;
- ``candidates.csv``: every evaluated candidate, most accurate first: ``arch``, ``accuracy`` (validation
  accuracy, %), one ``latency_ms[LABEL]`` column per table (LABEL is the table's device name, or its
  file name when two tables share a device), one ``energy_mj[LABEL]`` column per table that carries energy
  (imported from HW-NAS-Bench, say), ``macs``, ``params``, ``feasible``, ``generation``,
  ``origin`` (random / mutation / crossover) and ``eval_index`` (the order of evaluation);
- ``best.json``: the most accurate feasible candidate, with its space, so `hwnas export` can rebuild it;
- ``references.csv``: the reference architectures of the space (see `hwnas.search.runner`);
- ``state.json``: the evaluated (architecture, accuracy) pairs in order, rewritten after every
  generation (never pickled), with ``done`` once the search finished;
- ``supernet/``: the training run of a strategy that trains one (differentiable search), resumed with it.

A sweep over several targets writes one such directory per target, ``SEARCH_DIR/target_3ms`` and so on,
listed in ``SEARCH_DIR/sweep.json``.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from hwnas import __version__
from hwnas.errors import CheckpointError
from hwnas.files import dump_json, write_atomic
from hwnas.readers import Column, read_csv, read_json, require_dir
from hwnas.tables import LookupTable

CONFIG, CANDIDATES, BEST, STATE, REFERENCES, SWEEP, TRAINING_RUN = (
    "config.json", "candidates.csv", "best.json", "state.json", "references.csv", "sweep.json", "supernet")
KIND, SWEEP_KIND, STATE_KIND = "hwnas-search", "hwnas-search-sweep", "hwnas-search-state"
VERSION = 1
#: config keys that may differ between a search and its resumption
VOLATILE = ("hwnas",)


def latency_column(label: str) -> str:
    return f"latency_ms[{label}]"


def energy_column(label: str) -> str:
    return f"energy_mj[{label}]"


def table_labels(tables: Sequence[LookupTable]) -> list[str]:
    """One short unique label per table: its device name, or its file name when devices repeat."""
    devices = [t.device_name for t in tables]
    labels = [d if devices.count(d) == 1 else (t.path.stem if t.path else f"{d}-{i + 1}")
              for i, (t, d) in enumerate(zip(tables, devices))]
    seen: dict[str, int] = {}
    unique = []
    for label in labels:
        seen[label] = seen.get(label, 0) + 1
        unique.append(label if seen[label] == 1 else f"{label}-{seen[label]}")
    return unique


def describe_tables(tables: Sequence[LookupTable], labels: Sequence[str]) -> list[dict]:
    return [{"label": label, "path": str(t.path.resolve()) if t.path else None, "device": t.device_name,
             "digest": t.digest(), "calibrated": t.calibration is not None}
            for t, label in zip(tables, labels)]


def write_json(path: Path, data: Any, *, nan_as_null: bool = False) -> None:
    """``data`` as strict JSON (see `hwnas.files.dump_json`: NaN as null only with ``nan_as_null``, any other
    non-finite number a ValueError), written atomically."""
    write_atomic(path, dump_json(data, nan_as_null=nan_as_null, indent=2) + "\n")


#: what a search's JSON files must hold (checked on reading; the types of their other fields are free)
CONFIG_FIELDS = {"space": dict, "tables": list[dict], "target_latency_ms": float}
STATE_FIELDS = {"evaluated": list[list]}
SWEEP_FIELDS = {"searches": list[str]}
BEST_FIELDS = {"arch": str, "ops": list[str], "space": dict, "accuracy": float, "latency_ms": dict}


def read_search_json(path: Path, what: str, fields: dict[str, Any]) -> dict:
    """One of a search directory's JSON files: strict JSON, an object with ``fields``; else a CheckpointError
    naming the file and the line."""
    return read_json(path, what, CheckpointError, fields=fields)


def read_best(path: Path) -> dict:
    """A search's best.json: its architecture (``ops``), space, accuracy and latency on each table."""
    best = read_search_json(path, "a search's best.json", BEST_FIELDS)
    for label, ms in best["latency_ms"].items():
        if isinstance(ms, bool) or not isinstance(ms, (int, float)) or ms < 0:
            raise CheckpointError(f"a search's best.json must hold a latency >= 0 for every table, but {path} has "
                                  f"{dump_json(ms)[:40]} for {label!r}")
    return best


def candidate_columns(labels: Sequence[str]) -> dict[str, Column]:
    """What candidates.csv must hold, with one latency column per table label."""
    return {"arch": Column("text"), "accuracy": Column("number", 0, 100),
            **{latency_column(label): Column("number", 0) for label in labels},
            "macs": Column("int", 0), "params": Column("int", 0), "feasible": Column("bool"),
            "generation": Column("int", 0), "origin": Column("text"), "eval_index": Column("int", 0)}


def reference_columns(labels: Sequence[str]) -> dict[str, Column]:
    """What references.csv must hold: a reference may lack an accuracy (outside the space) or a latency (a
    table lacking its blocks), and has no feasibility outside the space."""
    return {"name": Column("text"), "arch": Column("text"), "accuracy": Column("number", 0, 100, empty=True),
            **{latency_column(label): Column("number", 0, empty=True) for label in labels},
            "feasible": Column("bool", empty=True)}


def candidate_rows(candidates: Iterable[Any], labels: Sequence[str]) -> list[dict]:
    """Rows of candidates.csv in evaluation order (``eval_index``)."""
    rows = []
    for index, c in enumerate(candidates):
        row: dict[str, Any] = {"arch": str(c.arch), "accuracy": c.accuracy}
        row.update({latency_column(label): ms for label, ms in zip(labels, c.latency_ms)})
        row.update({energy_column(label): mj for label, mj in zip(labels, c.energy_mj) if mj is not None})
        row.update({"macs": c.macs, "params": c.params, "feasible": c.feasible, "generation": c.generation,
                    "origin": c.origin, "eval_index": index,
                    "estimator": c.estimator if c.rescored is None else f"{c.estimator}, supernet",
                    "rescored_accuracy": c.rescored})
        rows.append(row)
    return rows


def candidates_frame(candidates: Sequence[Any], labels: Sequence[str]) -> pd.DataFrame:
    """Candidates most accurate first: those re-scored by the supernet first, by that accuracy, then the rest
    (ties: faster on the constraining table, then evaluated earlier)."""
    rows = candidate_rows(candidates, labels)
    energy = [energy_column(label) for label in labels if any(energy_column(label) in row for row in rows)]
    columns = ["arch", "accuracy", *map(latency_column, labels), *energy, "macs", "params", "feasible", "generation",
               "origin", "eval_index", "estimator", "rescored_accuracy"]
    frame = pd.DataFrame(rows, columns=columns)
    if frame.empty:
        return frame
    return frame.sort_values(["rescored_accuracy", "accuracy", latency_column(labels[0]), "eval_index"],
                             ascending=[False, False, True, True], kind="stable",
                             na_position="last").reset_index(drop=True)


def best_record(candidate: Any, labels: Sequence[str], config: dict) -> dict:
    return {"kind": "hwnas-search-best", "arch": str(candidate.arch), "ops": list(candidate.arch.ops),
            "accuracy": candidate.accuracy, "estimator": candidate.estimator, "rescored_accuracy": candidate.rescored,
            "latency_ms": dict(zip(labels, candidate.latency_ms)),
            **({"energy_mj": {label: mj for label, mj in zip(labels, candidate.energy_mj) if mj is not None}}
               if any(mj is not None for mj in candidate.energy_mj) else {}),
            "macs": candidate.macs,
            "params": candidate.params, "generation": candidate.generation, "origin": candidate.origin,
            "target_latency_ms": config["target_latency_ms"], "space": config["space"]}


class SearchWriter:
    """Writes one search directory: config first, state after each step, results at the end."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        #: the supernet's re-scored accuracies saved by an interrupted search (filled by `prepare`)
        self.rescored: dict[str, float] = {}

    def prepare(self, config: dict, force: bool = False) -> dict[str, float]:
        """Create the directory, or find in it the state of an interrupted search with the same config.

        Returns the accuracies saved by that search (empty for a fresh one). A directory that holds a
        search with another configuration is refused unless ``force`` starts it afresh.
        """
        text = dump_json(config, indent=2) + "\n"  # a config that is not JSON is refused before anything is removed
        if self.path.exists() and not self.path.is_dir():
            raise CheckpointError(f"a search directory must be a directory, but {self.path} is a file")
        if (self.path / SWEEP).exists():
            if not force:
                raise CheckpointError(f"{self.path} holds a sweep over several targets; write a single search "
                                      f"elsewhere, or pass --force to make it a single search")
            (self.path / SWEEP).unlink()
        self.path.mkdir(parents=True, exist_ok=True)
        saved: dict[str, float] = {}
        config_path = self.path / CONFIG
        if config_path.exists() and not force:
            old = read_search_json(config_path, "a search's config.json", CONFIG_FIELDS)
            diffs = config_diffs(old, config)
            if diffs:
                raise CheckpointError(f"{self.path} holds a search with another configuration "
                                      f"({'; '.join(diffs[:3])}); "
                                      f"pass --force to start it again, or choose another output directory")
            if (self.path / STATE).exists():
                state = read_search_json(self.path / STATE, "a search's state.json", STATE_FIELDS)
                saved = _saved_accuracies(state["evaluated"], self.path / STATE)
                rescored = state.get("rescored", [])
                self.rescored = _saved_accuracies(rescored if isinstance(rescored, list) else [None], self.path / STATE)
        else:
            for name in (CANDIDATES, BEST, STATE, REFERENCES):
                (self.path / name).unlink(missing_ok=True)
            shutil.rmtree(self.path / TRAINING_RUN, ignore_errors=True)
        write_atomic(config_path, text)
        return saved

    def checkpoint(self, candidates: Sequence[Any], labels: Sequence[str], generation: int, done: bool = False) -> None:
        write_json(self.path / STATE, {"kind": STATE_KIND, "version": VERSION, "done": done, "generation": generation,
                                       "evaluated": [[str(c.arch), c.accuracy] for c in candidates],
                                       "rescored": [[str(c.arch), c.rescored] for c in candidates
                                                    if c.rescored is not None]})
        write_atomic(self.path / CANDIDATES, candidates_frame(candidates, labels).to_csv(index=False))

    def finish(self, candidates: Sequence[Any], best: Any, labels: Sequence[str], config: dict,
               references: Sequence[dict], generation: int) -> None:
        if references:
            write_atomic(self.path / REFERENCES, pd.DataFrame(list(references)).to_csv(index=False))
        if best is not None:
            write_json(self.path / BEST, best_record(best, labels, config))
        self.checkpoint(candidates, labels, generation, done=True)


def _saved_accuracies(evaluated: list[list], path: Path) -> dict[str, float]:
    saved = {}
    for i, pair in enumerate(evaluated):
        if not (isinstance(pair, list) and len(pair) == 2 and isinstance(pair[0], str) and isinstance(pair[1], (int, float))
                and not isinstance(pair[1], bool) and 0 <= pair[1] <= 100):
            raise CheckpointError(f"a search's state.json must hold 'evaluated' as [architecture, accuracy in "
                                  f"[0, 100]] pairs, but {path} has {dump_json(pair)[:80]} at position {i}")
        saved[pair[0]] = float(pair[1])
    return saved


def config_diffs(old: dict, new: dict) -> list[str]:
    """The settings in which two search configurations differ, volatile ones ignored."""
    def flat(data: Any, prefix: str = "") -> dict[str, Any]:
        if isinstance(data, dict):
            out: dict[str, Any] = {}
            for key, value in data.items():
                if not prefix and key in VOLATILE:
                    continue
                out.update(flat(value, f"{prefix}{key}."))
            return out
        if isinstance(data, list) and data and all(isinstance(d, dict) for d in data):
            out = {}
            for i, value in enumerate(data):
                out.update(flat(value, f"{prefix}{i}."))
            return out
        return {prefix.rstrip("."): data}

    a, b = flat(old), flat(new)
    return [f"{key} {a.get(key)!r} != {b.get(key)!r}" for key in sorted(set(a) | set(b))
            if a.get(key) != b.get(key) and not key.endswith(".path")]


def write_sweep(path: Path, targets_ms: Sequence[float], names: Sequence[str], force: bool = False) -> None:
    """Mark ``path`` as a sweep directory (its sub-directories are the searches)."""
    sweep = {"kind": SWEEP_KIND, "version": VERSION, "targets_ms": list(targets_ms), "searches": list(names)}
    text = dump_json(sweep, indent=2) + "\n"  # refused before anything is removed
    if path.exists() and not path.is_dir():
        raise CheckpointError(f"a search directory must be a directory, but {path} is a file")
    if (path / CONFIG).exists() and not force:
        raise CheckpointError(f"{path} holds a single search; write the sweep elsewhere or pass --force")
    path.mkdir(parents=True, exist_ok=True)
    if force:
        for name in (CONFIG, CANDIDATES, BEST, STATE, REFERENCES):
            (path / name).unlink(missing_ok=True)
    write_atomic(path / SWEEP, text)


@dataclass
class SearchRecord:
    """A finished (or interrupted) search as read back from its directory."""

    path: Path
    config: dict
    candidates: pd.DataFrame
    best: dict | None
    references: pd.DataFrame | None

    @property
    def labels(self) -> list[str]:
        return [t["label"] for t in self.config["tables"]]

    @property
    def devices(self) -> dict[str, str]:
        return {t["label"]: t["device"] for t in self.config["tables"]}

    @property
    def target_ms(self) -> float:
        return float(self.config["target_latency_ms"])

    @property
    def name(self) -> str:
        """How legends name this search: its directory, with the parent for a sweep member."""
        parent = self.path.parent
        return f"{parent.name}/{self.path.name}" if (parent / SWEEP).exists() else self.path.name


def expand_search_dirs(paths: Iterable[str | Path]) -> list[Path]:
    """Search directories, a sweep directory standing for the searches it lists."""
    out: list[Path] = []
    for path in map(Path, paths):
        require_dir(path, "a search directory must exist", CheckpointError)
        if (path / SWEEP).exists():
            sweep = read_search_json(path / SWEEP, "a sweep's sweep.json", SWEEP_FIELDS)
            out.extend(path / name for name in sweep["searches"])
        else:
            out.append(path)
    return out


def load_search(path: str | Path) -> SearchRecord:
    """Read a search directory; one with no evaluated candidate is an error."""
    path = Path(path)
    require_dir(path, "a search directory must exist", CheckpointError)
    if (path / SWEEP).exists():
        names = read_search_json(path / SWEEP, "a sweep's sweep.json", SWEEP_FIELDS)["searches"]
        raise CheckpointError(f"{path} is a sweep over several targets; name one of its searches: "
                              f"{', '.join(str(path / n) for n in names)}")
    candidates_path = path / CANDIDATES
    if not (path / CONFIG).exists() or not candidates_path.exists():
        raise CheckpointError(f"a search directory must hold {CONFIG} and {CANDIDATES}, but {path} does not "
                              f"(run `hwnas search -o {path}` first)")
    config = read_search_json(path / CONFIG, "a search's config.json", CONFIG_FIELDS)
    labels = [t.get("label") for t in config["tables"]]
    if not labels or not all(isinstance(label, str) for label in labels):
        raise CheckpointError(f"a search's config.json must name one or more tables, each with a 'label', but "
                              f"{path / CONFIG} has {dump_json(labels)[:80]}")
    candidates = read_csv(candidates_path, "a search's candidates.csv", candidate_columns(labels), CheckpointError,
                          none_message=f"a search directory must hold at least one evaluated candidate, but "
                                       f"{candidates_path} has none")
    best = read_best(path / BEST) if (path / BEST).exists() else None
    references = (read_csv(path / REFERENCES, "a search's references.csv", reference_columns(labels), CheckpointError)
                  if (path / REFERENCES).exists() else None)
    return SearchRecord(path, config, candidates, best, references)


def search_config(*, strategy: Any, seed: int, space: Any, constraint: Any, tables: Sequence[LookupTable],
                  labels: Sequence[str], evaluator: Any, extra: dict | None = None) -> dict:
    return {"kind": KIND, "version": VERSION, "hwnas": __version__, "strategy": strategy.name,
            "settings": strategy.settings(), "seed": seed, "space": space.describe(),
            "target_latency_ms": constraint.target_ms, "max_macs": constraint.max_macs,
            "max_params": constraint.max_params,
            **({"max_energy_mj": constraint.max_energy} if constraint.max_energy is not None else {}),
            "tables": describe_tables(tables, labels),
            "evaluator": evaluator.describe() if evaluator is not None else None, **(extra or {})}

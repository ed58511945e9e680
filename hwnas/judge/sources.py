"""What the directories of other commands hold, read for a ranking or a predictor: the architectures (and
estimated accuracies) of searches and rankings, and the stand-alone accuracies of rankings and reports."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from hwnas.errors import CheckpointError, ConfigError
from hwnas.readers import Column, read_csv, read_json
from hwnas.search.results import load_search
from hwnas.space import REFERENCES, SearchSpace, find_reference

SELECTION = "selection.json"
RANK_CSV, RANK_JSON, REPORT_CSV, REPORT_JSON = "rank.csv", "rank.json", "report.csv", "report.json"
#: the column of a ranking's selection that holds the supernet's accuracy (BN recalibrated)
RECALIBRATED = "supernet_acc_recalibrated_bn"


def _differences(theirs: Any, mine: dict) -> str:
    theirs = theirs if isinstance(theirs, dict) else {}
    diffs = [f"{key} {theirs.get(key)!r} != {mine.get(key)!r}" for key in sorted(set(theirs) | set(mine))
             if theirs.get(key) != mine.get(key)]
    return "; ".join(diffs[:3])


def candidates(space: SearchSpace, sources: Sequence[Path]) -> pd.DataFrame:
    """The union of the architectures (``arch``) of the searches or rankings ``sources``, each once, with the
    accuracy (``accuracy``) of the first source that holds it: a search's estimate, or a ranking's supernet
    accuracy with BN recalibrated."""
    frame = pd.concat([_candidates_of(space, Path(source)) for source in sources], ignore_index=True)
    return frame.assign(arch=frame["arch"].astype(str)).drop_duplicates("arch", ignore_index=True)


def _candidates_of(space: SearchSpace, source: Path) -> pd.DataFrame:
    if (source / SELECTION).exists():
        saved = read_json(source / SELECTION, "a ranking's selection.json", CheckpointError,
                          fields={"config": dict, "plan": list[dict]})
        described = saved["config"].get("space")
        frame = pd.DataFrame([{"arch": e.get("arch"), "accuracy": e.get(RECALIBRATED)} for e in saved["plan"]])
    else:
        record = load_search(source)
        described, frame = record.config["space"], record.candidates
    if described != space.describe():
        raise ConfigError(f"--archs-from must be a search or ranking of the supernet's space, but {source} differs: "
                          f"{_differences(described, space.describe())} (theirs != supernet)")
    return frame


def standalone_results(space: SearchSpace, sources: Sequence[Path], data: dict[str, Any]) -> pd.DataFrame:
    """The architectures of ``space`` trained stand-alone in the rankings or reports ``sources`` (``hwnas rank``,
    ``hwnas report``), on the data settings ``data`` (`hwnas.training.trained.data_settings`; where the data
    lives may differ): ``arch``, ``val_acc`` and ``test_acc`` (%, means over seeds), ``source``. A report's
    references built with other channels than ``space`` (FBNet-B beside the fbnet space) are left out; an
    architecture in several sources is taken from the first."""
    frames = []
    for source in map(Path, sources):
        if (source / RANK_CSV).exists():
            kind, saved = "ranking", read_json(source / RANK_JSON, "a ranking's rank.json", ConfigError)
            frame = read_csv(source / RANK_CSV, "a ranking's rank.csv",
                             {"arch": Column("text"), "standalone_test_acc": Column("number", 0, 100),
                              "standalone_val_acc": Column("number", 0, 100, empty=True)}, ConfigError)
            frame = frame.rename(columns={"standalone_test_acc": "test_acc", "standalone_val_acc": "val_acc"})
        elif (source / REPORT_CSV).exists():
            kind, saved = "report", read_json(source / REPORT_JSON, "a report's report.json", ConfigError)
            frame = read_csv(source / REPORT_CSV, "a report's report.csv",
                             {"kind": Column("text"), "name": Column("text"), "arch": Column("text"),
                              "test_acc": Column("number", 0, 100), "val_acc": Column("number", 0, 100, empty=True)},
                             ConfigError)
            frame = frame[[_in_space(row, space) for _, row in frame.iterrows()]]
        else:
            raise ConfigError(f"--standalone must name a finished ranking or report (rank.csv or report.csv), but "
                              f"{source} holds neither")
        theirs = saved.get("data") if isinstance(saved, dict) else None
        mine = {k: v for k, v in data.items() if k != "data_root"}
        theirs = {k: v for k, v in theirs.items() if k != "data_root"} if isinstance(theirs, dict) else theirs
        if theirs != mine:
            raise ConfigError(f"--standalone must name trainings on the supernet's data, but the {kind} in {source} "
                              f"differs: {_differences(theirs, mine)} (theirs != supernet)")
        space_of = saved.get("space") if kind == "ranking" else None
        if space_of is not None and space_of != space.describe():
            raise ConfigError(f"--standalone must name trainings of the supernet's space, but the ranking in {source} "
                              f"differs: {_differences(space_of, space.describe())} (theirs != supernet)")
        frames.append(frame[["arch", "val_acc", "test_acc"]].assign(source=str(source)))
    out = pd.concat(frames, ignore_index=True).drop_duplicates("arch", ignore_index=True)
    for arch in out["arch"]:
        space.validate(arch)
    return out


def _in_space(row: pd.Series, space: SearchSpace) -> bool:
    """Whether a report's row is an architecture of ``space`` itself (a found or random one, or a reference whose
    space at the report's input profile and width is ``space``)."""
    if row["kind"] != "reference":
        return True
    ref = find_reference(str(row["name"]))
    if ref is None or ref.name not in REFERENCES or ref.space != space.name:
        return False
    return ref.build_space(space.profile, width=space.config.get("width", 1.0)).describe() == space.describe()

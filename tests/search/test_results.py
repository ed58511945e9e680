"""The search directory: what it holds, resuming into it, sweeps, references, and reading it back."""

import json
import math

import pandas as pd
import pytest

from hwnas.errors import CheckpointError, ConfigError
from hwnas.search import Evolution, RandomSearch, expand_search_dirs, load_search, run_search, run_sweep
from hwnas.testing import SyntheticEvaluator, synthetic_table
from hwnas.space import REFERENCES
from hwnas.space import get_space


def search(space, tables, target, output, **kwargs):
    return run_search(RandomSearch(samples=kwargs.pop("samples", 20)), space=space, tables=tables, target_ms=target,
                      evaluator=kwargs.pop("evaluator", SyntheticEvaluator(space)), output=output, **kwargs)


def test_search_directory_contents(space, table, phone_table, median_ms, tmp_path):
    result = search(space, [table, phone_table], median_ms, tmp_path)
    assert {p.name for p in tmp_path.iterdir()} == {"config.json", "candidates.csv", "best.json", "state.json",
                                                    "references.csv"}
    frame = pd.read_csv(tmp_path / "candidates.csv")
    assert list(frame.columns) == ["arch", "accuracy", "latency_ms[cpu]", "latency_ms[phone]", "macs", "params",
                                   "feasible", "generation", "origin", "eval_index", "estimator", "rescored_accuracy"]
    assert len(frame) == 20 and frame["accuracy"].is_monotonic_decreasing
    assert set(frame["estimator"]) == {"synthetic"} and frame["rescored_accuracy"].isna().all()
    assert sorted(frame["eval_index"]) == list(range(20))
    first = result.candidates[0]
    row = frame[frame["eval_index"] == 0].iloc[0]
    assert row["arch"] == str(first.arch) and row["latency_ms[phone]"] == pytest.approx(first.latency_ms[1])
    best = json.loads((tmp_path / "best.json").read_text())
    assert best["arch"] == frame["arch"][0] == str(result.best.arch)
    assert best["latency_ms"] == {"cpu": pytest.approx(result.best.latency_ms[0]),
                                  "phone": pytest.approx(result.best.latency_ms[1])}
    assert best["space"] == space.describe() and best["target_latency_ms"] == median_ms
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["strategy"] == "random" and config["settings"]["samples"] == 20 and config["seed"] == 0
    assert [t["label"] for t in config["tables"]] == ["cpu", "phone"]
    assert config["evaluator"]["kind"] == "synthetic" and config["target_latency_ms"] == median_ms
    record = load_search(tmp_path)
    assert record.labels == ["cpu", "phone"] and record.target_ms == median_ms and len(record.candidates) == 20


def test_same_device_twice_is_labelled_by_file(space, tmp_path, median_ms):
    a = synthetic_table(space, device="cpu", path=tmp_path / "laptop.jsonl")
    b = synthetic_table(space, device="cpu", ms_per_mmac=0.03, path=tmp_path / "server.jsonl")
    search(space, [a, b], median_ms, tmp_path / "s", samples=5)
    assert "latency_ms[laptop]" in pd.read_csv(tmp_path / "s" / "candidates.csv").columns


def test_other_configuration_is_refused_unless_forced(space, table, median_ms, tmp_path):
    search(space, [table], median_ms, tmp_path)
    before = (tmp_path / "candidates.csv").read_text()
    with pytest.raises(CheckpointError, match="holds a search with another configuration .*seed 0 != 1.*pass --force"):
        search(space, [table], median_ms, tmp_path, seed=1)
    assert (tmp_path / "candidates.csv").read_text() == before
    search(space, [table], median_ms, tmp_path, seed=1, force=True)
    assert json.loads((tmp_path / "config.json").read_text())["seed"] == 1


def test_finished_search_runs_again_from_its_state(space, table, median_ms, tmp_path):
    search(space, [table], median_ms, tmp_path)
    evaluator = SyntheticEvaluator(space)
    before = (tmp_path / "candidates.csv").read_text()
    result = search(space, [table], median_ms, tmp_path, evaluator=evaluator)
    assert evaluator.evaluations == 0 and result.evaluations == 0
    assert (tmp_path / "candidates.csv").read_text() == before


def test_sweep_writes_one_directory_per_target(space, table, median_ms, tmp_path):
    targets = [0.97 * median_ms, median_ms]
    evaluator = SyntheticEvaluator(space)
    results = run_sweep(RandomSearch(samples=10), targets_ms=targets, space=space, tables=[table],
                        evaluator=evaluator, output=tmp_path, references=False)
    names = [f"target_{t:g}ms" for t in targets]
    sweep = json.loads((tmp_path / "sweep.json").read_text())
    assert sweep["searches"] == names and sweep["targets_ms"] == targets
    assert [r.path for r in results] == [tmp_path / n for n in names]
    for target, name in zip(targets, names):
        frame = pd.read_csv(tmp_path / name / "candidates.csv")
        assert (frame["latency_ms[cpu]"] <= target).all()
        assert json.loads((tmp_path / name / "config.json").read_text())["target_latency_ms"] == target
    assert expand_search_dirs([tmp_path]) == [tmp_path / n for n in names]
    with pytest.raises(CheckpointError, match="is a sweep over several targets; name one of its searches"):
        load_search(tmp_path)
    # the evaluator is shared: an architecture drawn for both targets is evaluated once
    distinct = {str(c.arch) for r in results for c in r.candidates}
    assert evaluator.evaluations == len(distinct) < sum(len(r.candidates) for r in results)
    assert [r.evaluations for r in results] == [len(results[0].candidates), len(distinct) - len(results[0].candidates)]


def test_sweep_checks_every_target_first(space, table, median_ms, tmp_path):
    with pytest.raises(ConfigError, match="below the smallest latency"):
        run_sweep(RandomSearch(samples=5), targets_ms=[median_ms, 0.01 * table.minimum_latency()], space=space,
                  tables=[table], evaluator=SyntheticEvaluator(space), output=tmp_path / "sweep")
    assert not (tmp_path / "sweep").exists()


def test_reading_bad_directories(space, table, median_ms, tmp_path):
    with pytest.raises(CheckpointError, match="a search directory must exist, but .*nowhere does not"):
        load_search(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match="must hold config.json and candidates.csv, but .*empty does not"):
        load_search(tmp_path / "empty")
    search(space, [table], median_ms, tmp_path / "s", samples=3)
    (tmp_path / "s" / "candidates.csv").write_text("arch,accuracy\n")
    with pytest.raises(CheckpointError, match="at least one evaluated candidate, but .*candidates.csv has none"):
        load_search(tmp_path / "s")


def test_references_in_the_space_are_evaluated_others_placed_by_latency(tmp_path):
    """FBNet-A is an architecture of the cifar fbnet space (head 1504); FBNet-B/C have a 1984 head: the
    table below also holds that head, so they get a latency, but no accuracy."""
    space = get_space("fbnet", "cifar10", width=0.25)
    table = synthetic_table(space, device="cpu")
    wide_head = REFERENCES.get("FBNet-B").build_space(space.profile, width=0.25)
    extra = synthetic_table(wide_head, device="cpu")
    for key, record in extra.records.items():
        table.records.setdefault(key, record)
    target = 2 * table.minimum_latency()
    result = search(space, [table], target, tmp_path, samples=5)
    refs = pd.read_csv(tmp_path / "references.csv").set_index("name")
    assert list(refs.index) == ["FBNet-A", "FBNet-B", "FBNet-C"]
    a = refs.loc["FBNet-A"]
    assert a["in_space"] and not math.isnan(a["accuracy"])
    assert a["accuracy"] == pytest.approx(SyntheticEvaluator(space)(a["arch"]))
    assert a["latency_ms[cpu]"] == pytest.approx(table.predict(a["arch"]).latency_ms)
    for name in ("FBNet-B", "FBNet-C"):
        row = refs.loc[name]
        assert not row["in_space"] and math.isnan(row["accuracy"]) and row["latency_ms[cpu]"] > 0
    assert len(result.candidates) == 5  # references are kept apart from the candidates


def test_a_sweep_shares_its_candidates_so_the_best_never_falls_as_the_target_loosens(space, table, median_ms,
                                                                                       tmp_path):
    targets = [0.95 * median_ms, median_ms, 1.05 * median_ms]
    results = run_sweep(Evolution(population=6, generations=2, parents=2), targets_ms=targets, space=space,
                        tables=[table], evaluator=SyntheticEvaluator(space), output=tmp_path, references=False)
    best = [r.best.accuracy for r in results]
    assert best == sorted(best), "a looser target is never worse than a tighter one"
    own = {str(c.arch): c for r in results for c in r.candidates if not c.origin.startswith("shared")}
    assert any(r.best.origin.startswith("shared from target_") for r in results), "sharing decided a best here"
    for target, result in zip(targets, results):
        frame = pd.read_csv(result.path / "candidates.csv")
        satisfying = {arch for arch, c in own.items() if c.latency_ms[0] <= target}
        assert set(frame["arch"]) == satisfying, "every candidate that satisfies the target, and only those"
        assert frame["feasible"].all() and len(frame) == len(set(frame["arch"]))
        stored = json.loads((result.path / "best.json").read_text())
        assert stored["accuracy"] == frame["accuracy"].max() == max(own[a].accuracy for a in satisfying)
    again = run_sweep(Evolution(population=6, generations=2, parents=2), targets_ms=targets, space=space,
                      tables=[table], evaluator=SyntheticEvaluator(space), output=tmp_path, references=False)
    assert [r.best.arch for r in again] == [r.best.arch for r in results], "a finished sweep resumes to itself"
    assert [len(r.candidates) for r in again] == [len(r.candidates) for r in results]


def test_a_sweep_carries_re_scored_accuracies_to_every_target(space, table, median_ms):
    """A looser target's search that found an architecture by itself, without re-scoring it, takes the score
    another target's re-scoring gave it: the re-scored best never falls as the target loosens."""
    import random
    from dataclasses import replace
    from hwnas.search import Constraint
    from hwnas.search.base import SearchContext
    from hwnas.search.runner import SearchResult, share_candidates

    rng = random.Random(5)
    tight, loose = Constraint(table, median_ms), Constraint(table, 10 * median_ms)
    archs = [a for a in (space.sample(rng) for _ in range(200)) if tight.feasible(a)][:2]
    context = SearchContext(space, tight, None, tables=[table])
    x, y = context.record_many(archs, [60.0, 70.0], "random")
    a = [replace(x, rescored=77.35)]
    b = [replace(x, estimator="predictor"), replace(y, rescored=77.30, estimator="predictor")]
    results = [SearchResult(a, a[0], ["cpu"], {"target_latency_ms": median_ms}),
               SearchResult(b, b[1], ["cpu"], {"target_latency_ms": 10 * median_ms})]
    share_candidates(results, [tight, loose])
    assert results[1].best.arch == x.arch and results[1].best.rescored == 77.35
    assert results[0].best.rescored == 77.35 and len(results[0].candidates) == 2, "y is shared to the tight target"

"""`hwnas rank`: the choice of architectures, the agreement statistics, and the command end to end on a tiny
synthetic supernet (resumption, bad input, torchrun)."""

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.stats import kendalltau

from hwnas.errors import ConfigError, TargetError
from hwnas.judge import rank as rank_module
from hwnas.judge import standalone
from hwnas.judge.agreement import Agreement, agreement
from hwnas.judge.rank import FEWEST_FOR_VERDICT, verdict
from hwnas.judge.selection import in_band, random_sample, random_subset, spread, stratified
from hwnas.space import get_space
from hwnas.testing import SyntheticEvaluator, synthetic_table
from cli_helpers import run, one_line_error as _one_line_error, same_rows

REPO = Path(__file__).resolve().parents[2]
RECIPE = ["--epochs", "1", "--steps-per-epoch", "2", "--batch-size", "8", "--no-progress", "--threads", "1"]

pytestmark = pytest.mark.usefixtures("one_thread")


# ----- choice of architectures ------------------------------------------------------------------------

def test_stratified_spreads_over_the_accuracy_range():
    space = get_space("proxylessnas", "cifar10", width=0.5)
    evaluator = SyntheticEvaluator(space)
    chosen = stratified(evaluator, space, 5, pool=40, seed=3)
    accuracies = [evaluator(a) for a in chosen]
    assert len(set(map(str, chosen))) == 5 and accuracies == sorted(accuracies)
    import random
    rng = random.Random(3)
    pool = [evaluator(space.sample(rng)) for _ in range(40)]
    assert accuracies[0] == min(pool) and accuracies[-1] == max(pool), "the ends of the range are included"
    assert [str(a) for a in stratified(evaluator, space, 5, pool=40, seed=3)] == [str(a) for a in chosen]


def test_random_sample_is_uniform_distinct_and_seeded():
    import random
    space = get_space("proxylessnas", "cifar10", width=0.5)
    chosen = random_sample(space, 6, seed=4)
    rng = random.Random(4)
    assert [str(a) for a in chosen] == [str(space.sample(rng)) for _ in range(6)], "the first draws of the seed"
    assert [str(a) for a in random_sample(space, 3, seed=4, exclude=[str(chosen[0])])] == list(map(str, chosen[1:4]))
    assert random_subset(chosen, 6) == chosen and len(set(map(str, random_subset(chosen, 3, seed=1)))) == 3


def test_in_band_draws_random_architectures_of_one_latency():
    space = get_space("proxylessnas", "cifar10", width=0.5)
    table = synthetic_table(space)
    import random
    rng = random.Random(0)
    median = float(np.median(table.predict_indices(np.array([space.indices(space.sample(rng)) for _ in range(500)]))))
    chosen = in_band(space, table, 0.95 * median, median, 5, seed=2)
    latencies = [table.predict(a).latency_ms for a in chosen]
    assert len(set(map(str, chosen))) == 5 and all(0.95 * median <= ms <= median for ms in latencies)
    assert [str(a) for a in in_band(space, table, 0.95 * median, median, 5, seed=2)] == list(map(str, chosen))
    with pytest.raises(ConfigError, match=r"must be found with a latency in \[0.001, 0.002\] ms .* gave only 0 of the 3"):
        in_band(space, table, 0.001, 0.002, 3, seed=0)


def test_spread_takes_distinct_architectures_of_a_search():
    space = get_space("spos", "cifar10", width=0.25)
    import random
    rng = random.Random(0)
    archs = [space.sample(rng) for _ in range(6)]
    accuracies = [10.0, 50.0, 30.0, 20.0, 60.0, 40.0]
    chosen = spread(archs + archs[:2], accuracies + accuracies[:2], 3)  # duplicates count once
    assert [str(a) for a in chosen] == [str(archs[0]), str(archs[2]), str(archs[4])]  # 10, 30, 60 %
    with pytest.raises(ConfigError, match="holds 6 distinct architectures, fewer than archs=7"):
        spread(archs, accuracies, 7)
    with pytest.raises(ConfigError, match="at least 2 architectures, but got archs=1"):
        spread(archs, accuracies, 1)


# ----- statistics -------------------------------------------------------------------------------------

def test_the_interval_holds_the_value_and_narrows_with_more_architectures():
    rng = np.random.default_rng(0)
    widths = []
    for n in (10, 80):
        truth = rng.normal(size=n)
        estimate = truth + rng.normal(size=n)
        stats = agreement(truth, estimate, samples=500)
        tau = stats["kendall_tau"]
        assert tau.low <= tau.value <= tau.high
        widths.append(tau.high - tau.low)
    assert widths[1] < widths[0]
    assert verdict(stats, 80).startswith("the supernet ranks architectures better than chance")


def test_verdict_needs_enough_architectures():
    stats = agreement(np.arange(4.0), np.arange(4.0), samples=50)
    assert verdict(stats, 4).startswith("no conclusion: 4 architectures are too few")
    noisy = agreement([1, 2, 3, 4, 5, 6, 7, 8], [2, 1, 4, 3, 6, 5, 8, 7][::-1], samples=300)
    assert FEWEST_FOR_VERDICT == 8 and "worse than chance" in verdict(noisy, 8) or "no conclusion" in verdict(noisy, 8)


def test_verdict_warns_when_a_size_baseline_ranks_as_well():
    def stats(tau):
        return {"kendall_tau": Agreement(tau, tau - 0.3, tau + 0.3)}

    plain = verdict(stats(0.5), 12, {"params": stats(0.2), "macs": stats(0.1)})
    assert plain.startswith("the supernet ranks architectures better than chance") and "beware" not in plain
    warned = verdict(stats(0.3), 12, {"params": stats(0.52), "macs": stats(0.42)})
    assert warned.endswith("; beware: counting params alone ranks them as well or better (tau 0.52)")
    assert "beware" not in verdict(stats(0.3), 4, {"params": stats(0.9)}), "too few for any verdict"


def test_verdict_judges_a_baseline_by_the_paired_interval_of_the_difference():
    def stats(tau):
        return {"kendall_tau": Agreement(tau, tau - 0.3, tau + 0.3)}

    better = verdict(stats(0.2), 24, {"macs": stats(0.53)}, who="the predictor",
                     differences={"macs": Agreement(-0.33, -0.6, -0.05)})
    assert better.startswith("no conclusion on the predictor: the 95 % interval of tau [-0.10, 0.50] includes 0")
    assert better.endswith("; beware: counting macs alone ranks them better: tau 0.53, the predictor - macs "
                           "-0.33 [-0.60, -0.05]")
    tied = verdict(stats(0.4), 24, {"macs": stats(0.45)}, differences={"macs": Agreement(-0.05, -0.3, 0.2)})
    assert "ranks them as well (the interval of the difference includes 0): tau 0.45" in tied
    ahead = verdict(stats(0.7), 24, {"macs": stats(0.3), "params": stats(0.2)},
                    differences={"macs": Agreement(0.4, 0.1, 0.7), "params": Agreement(0.5, 0.2, 0.8)})
    assert ahead.endswith(", and better than counting macs or params (every paired interval of the difference above 0)")
    close = verdict(stats(0.7), 24, {"macs": stats(0.3)}, differences={"macs": Agreement(0.4, -0.1, 0.7)})
    assert "beware" not in close and "better than counting" not in close


# ----- the command ------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def supernet(tmp_path_factory):
    from hwnas.testing import tiny_supernet_run

    return tiny_supernet_run(tmp_path_factory.mktemp("rank") / "supernet", width=0.25, synthetic_size=64,
                             batch_size=8)


@pytest.fixture(scope="module")
def table_path(supernet, tmp_path_factory):
    from hwnas.training.trained import load_supernet

    net, _ = load_supernet(supernet)
    path = tmp_path_factory.mktemp("tables") / "spos.jsonl"
    synthetic_table(net.space, path=path)
    return path


def test_rank_writes_its_files_and_resumes_without_training_again(supernet, table_path, tmp_path):
    out = tmp_path / "rank"
    first = run("rank", supernet, "--archs", 3, *RECIPE, "--table", table_path, "-o", out, "--format", "json")
    assert first.exit_code == 0, first.output
    data = json.loads(first.output)
    data = {**data["summary"], "rows": data["rows"]}
    assert [row["ranked_by"] for row in data["rows"]] == ["supernet, BN recalibrated", "supernet, BN inherited",
                                                         "params (baseline)", "macs (baseline)"]
    assert data["architectures"] == 3 and data["verdict"].startswith("no conclusion: 3 architectures")
    assert data["sample"] == "drawn uniformly from the space" and data["top_k"] == 2
    assert data["truth"] is None, "one seed: how far the stand-alone accuracies can be trusted is unknown"
    assert data["top_k_chance"] == pytest.approx(2 / 3, abs=1e-4)
    assert [d["compared"] for d in data["differences"]] == ["recalibrated_bn - params", "recalibrated_bn - macs",
                                                            "recalibrated_bn - inherited_bn"]
    frame = pd.read_csv(out / "rank.csv")
    assert list(frame.columns) == ["arch", "supernet_acc_inherited_bn", "supernet_acc_recalibrated_bn",
                                   "standalone_test_acc", "standalone_val_acc", "latency_ms[synthetic]", "macs",
                                   "params", "run"]
    assert len(frame) == 3 and frame["standalone_test_acc"].between(0, 100).all() and (frame["macs"] > 0).all()
    from hwnas.training.trained import load_supernet
    space = load_supernet(supernet)[0].space
    assert list(frame["arch"]) == [str(a) for a in random_sample(space, 3, seed=0)], "a uniform random sample"
    saved = json.loads((out / "rank.json").read_text())
    assert saved["recipe"]["epochs"] == 1 and saved["data"]["dataset"] == "synthetic"
    assert saved["sample"] == {"kind": "random", "target_ms": None, "band": 0.05}
    assert saved["estimator"]["bn_batches"] == 2 and saved["top_k_chance"] == pytest.approx(2 / 3)
    assert set(saved["agreement"]) == {"recalibrated_bn", "inherited_bn"} and saved["truth"] is None
    assert set(saved["baselines"]) == {"params", "macs"}
    taus = {row["ranked_by"]: row["kendall_tau"] for row in data["rows"]}
    by_params = kendalltau(frame["standalone_test_acc"], frame["params"]).statistic
    assert taus["params (baseline)"] == pytest.approx(by_params, nan_ok=True, abs=1e-4)
    assert (out / "rank.png").stat().st_size > 10_000
    for run_name in frame["run"]:
        result = json.loads((out / run_name / "result.json").read_text())
        assert result["test_acc"] == pytest.approx(frame.set_index("run").loc[run_name, "standalone_test_acc"])
    checkpoints = {p: p.stat().st_mtime_ns for p in out.glob("runs/*/checkpoint.pt")}
    again, summary = same_rows("rank", supernet, "--archs", 3, *RECIPE, "--table", table_path, "-o", out)
    assert again == data["rows"] and summary["differences"] == data["differences"]  # replayed, in both formats
    assert {p: p.stat().st_mtime_ns for p in out.glob("runs/*/checkpoint.pt")} == checkpoints, "nothing retrained"
    other = run("rank", supernet, "--archs", 4, *RECIPE, "-o", out)
    _one_line_error(other, "holds the work of another configuration (archs 3 != 4")


def test_rank_samples_spread_and_at_a_target(supernet, table_path, tmp_path):
    spread_run = run("rank", supernet, "--archs", 3, "--sample", "spread", *RECIPE, "-o", tmp_path / "spread")
    assert spread_run.exit_code == 0, spread_run.output
    assert pd.read_csv(tmp_path / "spread" / "rank.csv")["supernet_acc_recalibrated_bn"].is_monotonic_increasing
    assert json.loads((tmp_path / "spread" / "rank.json").read_text())["sample"]["kind"] == "spread"
    from hwnas.tables import LookupTable
    table = LookupTable.load(table_path)
    from hwnas.training.trained import load_supernet
    space = load_supernet(supernet)[0].space
    import random
    rng = random.Random(0)
    target = float(np.median(table.predict_indices(np.array([space.indices(space.sample(rng)) for _ in range(300)]))))
    near = run("rank", supernet, "--archs", 3, "--sample", "target", "--target-latency", f"{target}ms", "--band",
               0.1, "--table", table_path, *RECIPE, "-o", tmp_path / "target", "--format", "json")
    assert near.exit_code == 0, near.output
    assert json.loads(near.output)["summary"]["sample"].startswith("random architectures within 10 % below the target")
    latencies = pd.read_csv(tmp_path / "target" / "rank.csv")["latency_ms[synthetic]"]
    assert latencies.between(0.9 * target, target).all()
    _one_line_error(run("rank", supernet, "--archs", 3, "--sample", "target", *RECIPE, "-o", tmp_path / "x"),
                    "--sample target needs --target-latency (and only it does)")
    _one_line_error(run("rank", supernet, "--archs", 3, "--sample", "target", "--target-latency", "1ms", *RECIPE,
                        "-o", tmp_path / "x"), "--sample target chooses architectures by their latency on a table")
    _one_line_error(run("rank", supernet, "--archs", 3, "--sample", "target", "--target-latency", "1ms", "--table",
                        table_path, "--archs-from", tmp_path / "spread", *RECIPE, "-o", tmp_path / "x"),
                    "--sample target draws architectures of one latency from the space, but --archs-from")
    assert not (tmp_path / "x").exists()


def test_rank_compares_a_predictor_with_the_supernet(supernet, tmp_path, monkeypatch):
    fitted = run("predictor", "fit", "--supernet", supernet, "--samples", 20, "--no-progress", "--threads", 1,
                 "-o", tmp_path / "p.json")
    assert fitted.exit_code == 0, fitted.output
    assert run("rank", supernet, "--archs", 3, *RECIPE, "-o", tmp_path / "a").exit_code == 0
    calls = []
    monkeypatch.setattr(standalone, "train", lambda *a, **k: calls.append(a))
    ranked = run("rank", supernet, "--archs", 3, "--archs-from", tmp_path / "a", "--predictor", tmp_path / "p.json",
                 *RECIPE, "-o", tmp_path / "b", "--format", "json")
    assert ranked.exit_code == 0, ranked.output
    assert not calls
    data = json.loads(ranked.output)
    data = {**data["summary"], "rows": data["rows"]}
    assert [row["ranked_by"] for row in data["rows"]][2] == "predictor"
    assert [d["compared"] for d in data["differences"]][:3] == ["predictor - recalibrated_bn", "predictor - params",
                                                               "predictor - macs"]
    frame = pd.read_csv(tmp_path / "b" / "rank.csv")
    from hwnas.search.predictor import Predictor
    assert frame["predicted_acc"].tolist() == pytest.approx(Predictor.load(tmp_path / "p.json").predict(frame["arch"]).tolist())
    saved = json.loads((tmp_path / "b" / "rank.json").read_text())
    assert saved["predictor"]["target"] == "supernet" and "predictor" in saved["agreement"]
    assert (tmp_path / "b" / "rank.png").stat().st_size > 10_000


def test_a_killed_rank_resumes_and_never_redoes_a_finished_training(supernet, tmp_path, monkeypatch):
    out = tmp_path / "rank"
    trained = []
    real_train = standalone.train

    def train_then_die(config, run_dir, **kwargs):
        if trained:
            raise KeyboardInterrupt  # killed during the second training
        trained.append(run_dir)
        return real_train(config, run_dir, **kwargs)

    monkeypatch.setattr(standalone, "train", train_then_die)
    killed = run("rank", supernet, "--archs", 3, *RECIPE, "-o", out)
    assert killed.exit_code != 0 and not (out / "rank.csv").exists()
    first = trained[0]
    assert (first / "result.json").exists()
    stamp = (first / "checkpoint.pt").stat().st_mtime_ns
    monkeypatch.setattr(standalone, "train", real_train)
    calls = []
    monkeypatch.setattr(standalone, "train", lambda config, run_dir, **kw: calls.append(run_dir) or real_train(config, run_dir, **kw))
    resumed = run("rank", supernet, "--archs", 3, *RECIPE, "-o", out)
    assert resumed.exit_code == 0, resumed.output
    assert first not in calls and len(calls) == 2 and (first / "checkpoint.pt").stat().st_mtime_ns == stamp
    assert len(pd.read_csv(out / "rank.csv")) == 3


def test_rank_from_a_search(supernet, table_path, tmp_path):
    search_dir = tmp_path / "search"
    searched = run("search", "--space", "spos", "--table", table_path, "--target-latency", "1000", "--supernet", supernet,
                   "--population", 4, "--generations", 2, "-o", search_dir)
    assert searched.exit_code == 0, searched.output
    ranked = run("rank", supernet, "--archs", 2, "--archs-from", search_dir, *RECIPE, "-o", tmp_path / "rank")
    assert ranked.exit_code == 0, ranked.output
    archs = set(pd.read_csv(search_dir / "candidates.csv")["arch"])
    assert set(pd.read_csv(tmp_path / "rank" / "rank.csv")["arch"]) <= archs


def test_rank_from_another_ranking_reuses_its_trainings(supernet, tmp_path, monkeypatch):
    first = run("rank", supernet, "--archs", 2, *RECIPE, "-o", tmp_path / "a")
    assert first.exit_code == 0, first.output
    calls = []
    monkeypatch.setattr(standalone, "train", lambda *a, **k: calls.append(a))
    second = run("rank", supernet, "--archs", 2, "--archs-from", tmp_path / "a", *RECIPE, "-o", tmp_path / "b")
    assert second.exit_code == 0, second.output
    assert not calls, "the trainings of the first ranking are reused"
    a, b = pd.read_csv(tmp_path / "a" / "rank.csv"), pd.read_csv(tmp_path / "b" / "rank.csv")
    assert a.drop(columns="run").equals(b.drop(columns="run"))
    reused = json.loads((tmp_path / "b" / b["run"][0] / "result.json").read_text())
    assert reused["trained_in"] == str((tmp_path / "a" / a["run"][0]).resolve())
    other_recipe = [*RECIPE[:1], "2", *RECIPE[2:]]
    monkeypatch.undo()
    third = run("rank", supernet, "--archs", 2, "--archs-from", tmp_path / "a", *other_recipe, "-o", tmp_path / "c")
    assert third.exit_code == 0 and not any("trained_in" in p.read_text() for p in (tmp_path / "c").glob("runs/*/result.json"))


def test_rankings_add_up_to_one_of_more_architectures(supernet, tmp_path, monkeypatch):
    """--archs-from twice: the union of both rankings' architectures, every training reused; --pool-seed
    chooses other architectures than the first ranking's."""
    for extra, name in ((["--archs", 3], "a"), (["--archs", 3, "--pool-seed", 1], "b")):
        assert run("rank", supernet, *extra, *RECIPE, "-o", tmp_path / name).exit_code == 0
    a, b = (pd.read_csv(tmp_path / name / "rank.csv") for name in ("a", "b"))
    assert json.loads((tmp_path / "b" / "rank.json").read_text())["pool_seed"] == 1
    assert "pool_seed" not in json.loads((tmp_path / "a" / "rank.json").read_text())
    union = set(a["arch"]) | set(b["arch"])
    assert len(union) > 3, "another pool seed, other architectures"
    calls = []
    monkeypatch.setattr(standalone, "train", lambda *args, **kwargs: calls.append(args))
    both = run("rank", supernet, "--archs", len(union), "--archs-from", tmp_path / "a", "--archs-from", tmp_path / "b",
               *RECIPE, "-o", tmp_path / "both")
    assert both.exit_code == 0, both.output
    assert not calls, "every training comes from the two rankings"
    frame = pd.read_csv(tmp_path / "both" / "rank.csv")
    assert set(frame["arch"]) == union and len(frame) == len(union)
    accuracy = {**dict(zip(b["arch"], b["standalone_test_acc"])), **dict(zip(a["arch"], a["standalone_test_acc"]))}
    assert frame.set_index("arch")["standalone_test_acc"].to_dict() == pytest.approx(accuracy)
    saved = json.loads((tmp_path / "both" / "rank.json").read_text())
    assert saved["archs_from"] == [str((tmp_path / name).resolve()) for name in ("a", "b")]
    too_many = run("rank", supernet, "--archs", len(union) + 1, "--archs-from", tmp_path / "a", "--archs-from",
                   tmp_path / "b", *RECIPE, "-o", tmp_path / "more")
    _one_line_error(too_many, f"holds {len(union)} distinct architectures, fewer than archs={len(union) + 1}")


def test_several_seeds_rank_by_the_mean_and_reuse_trainings_of_each_seed(supernet, tmp_path, monkeypatch):
    """--seeds 2 trains each architecture with seeds 0 and 1 and ranks by the mean; a ranking trained with
    --seed 1 provides the second seed's trainings, --reuse another ranking the first's."""
    one = run("rank", supernet, "--archs", 2, *RECIPE, "--seed", 1, "-o", tmp_path / "seed1")
    assert one.exit_code == 0, one.output
    real_train, calls = standalone.train, []
    monkeypatch.setattr(standalone, "train", lambda config, run_dir, **kw: calls.append(config.seed) or
                        real_train(config, run_dir, **kw))
    two = run("rank", supernet, "--archs", 2, "--archs-from", tmp_path / "seed1", *RECIPE, "--seeds", 2,
              "-o", tmp_path / "two")
    assert two.exit_code == 0, two.output
    assert calls == [0, 0], "only the seed-0 trainings are new"
    frame, first = pd.read_csv(tmp_path / "two" / "rank.csv"), pd.read_csv(tmp_path / "seed1" / "rank.csv")
    runs = sorted(p.name for p in (tmp_path / "two" / "runs").iterdir())
    assert len(runs) == 4 and sum(name.endswith("-seed1") for name in runs) == 2
    for _, row in frame.iterrows():
        accs = [json.loads((tmp_path / "two" / "runs" / name / "result.json").read_text())["test_acc"]
                for name in runs if name.startswith(Path(row["run"]).name)]
        assert row["standalone_test_acc"] == pytest.approx(np.mean(accs))
        assert row["standalone_test_acc_sd"] == pytest.approx(np.std(accs, ddof=1))
        assert first.set_index("arch").loc[row["arch"], "standalone_test_acc"] == pytest.approx(accs[1])  # seed 1
    assert json.loads((tmp_path / "two" / "rank.json").read_text())["seeds"] == 2
    calls.clear()
    again = run("rank", supernet, "--archs", 2, "--archs-from", tmp_path / "seed1", "--reuse", tmp_path / "two",
                *RECIPE, "--seeds", 2, "-o", tmp_path / "three")
    assert again.exit_code == 0 and calls == [], "every training reused"
    assert pd.read_csv(tmp_path / "three" / "rank.csv").drop(columns="run").equals(frame.drop(columns="run"))
    chained = run("rank", supernet, "--archs", 2, "--archs-from", tmp_path / "three", *RECIPE, "--seeds", 2,
                  "-o", tmp_path / "four")
    assert chained.exit_code == 0 and calls == [], "a ranking of reused trainings is reusable in turn"
    for result in (tmp_path / "four").glob("runs/*/result.json"):
        assert (Path(json.loads(result.read_text())["trained_in"]) / "checkpoint.pt").exists(), "names the original"


def test_bad_input_is_one_line(supernet, tmp_path):
    _one_line_error(run("rank", supernet, "--archs", 1, *RECIPE, "-o", tmp_path / "r"),
                    "Invalid value for '--archs': must be a finite integer >= 2 and <= 10000, but got '1'")
    _one_line_error(run("rank", tmp_path / "missing", "--archs", 2, *RECIPE, "-o", tmp_path / "r"),
                    "RUN_DIR must be a trained supernet's run directory, but")
    empty = tmp_path / "empty-search"
    empty.mkdir()
    _one_line_error(run("rank", supernet, "--archs", 2, "--archs-from", empty, *RECIPE, "-o", tmp_path / "r"),
                    "a search directory must hold config.json and candidates.csv")
    _one_line_error(run("rank", supernet, "--archs", 2, "--archs-from", empty, "--pool-seed", 1, *RECIPE,
                        "-o", tmp_path / "r"), "--pool-seed seeds the random sample architectures are chosen from, "
                    "but --archs-from takes them from")
    (tmp_path / "file").write_text("x")
    _one_line_error(run("rank", supernet, "--archs", 2, *RECIPE, "-o", tmp_path / "file"),
                    "is a file")
    assert not (tmp_path / "r").exists(), "nothing written for bad input"


def test_a_search_or_table_of_another_space_is_refused(supernet, table_path, tmp_path):
    search_dir = tmp_path / "search"
    assert run("search", "--space", "spos", "--table", table_path, "--target-latency", "1000", "--supernet", supernet,
               "--strategy", "random", "--samples", 3, "-o", search_dir).exit_code == 0
    config = json.loads((search_dir / "config.json").read_text())
    config["space"]["width"] = 0.5  # as if searched over a wider space
    (search_dir / "config.json").write_text(json.dumps(config))
    _one_line_error(run("rank", supernet, "--archs", 2, "--archs-from", search_dir, *RECIPE, "-o", tmp_path / "r"),
                    "--archs-from must be a search or ranking of the supernet's space, but")
    table = synthetic_table(get_space("fbnet", "cifar10", width=0.25, resolution=8), path=tmp_path / "fbnet.jsonl")
    _one_line_error(run("rank", supernet, "--archs", 2, "--table", table.path, *RECIPE, "-o", tmp_path / "r"),
                    "was built for space 'fbnet', but space 'spos' was asked for")
    assert not (tmp_path / "r").exists()


def test_a_retrained_network_is_not_a_supernet(supernet, tmp_path):
    retrained = tmp_path / "retrained"
    assert run("retrain", "--space", "spos", "--arch", "SPOS", "--dataset", "synthetic", "--width", 0.25,
               "--resolution", 8, "--synthetic-size", 32, "--batch-size", 8, "--epochs", 1, "--steps-per-epoch", 1,
               "--no-progress", "-o", retrained).exit_code == 0
    result = run("rank", retrained, "--archs", 2, *RECIPE, "-o", tmp_path / "r")
    assert result.exit_code == 2 and "holds a retrained architecture" in result.output


def test_a_stopped_torchrun_peer_is_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setattr(standalone.dist, "barrier", lambda: (_ for _ in ()).throw(RuntimeError("Connection closed by peer")))
    (tmp_path / "000-x").mkdir()
    (tmp_path / "000-x" / "result.json").write_text("{}")
    with pytest.raises(TargetError, match=r"a process of this torchrun job stopped \(Connection closed by peer\); "
                                          r"1 of 3 trainings are done in .*: run the same command again to resume"):
        standalone.barrier(2, tmp_path, 3)
    with pytest.raises(TargetError, match="this torchrun job was stopped"):
        standalone._stopped(15, None)


@pytest.mark.slow
def test_torchrun_two_processes_give_the_results_of_one(supernet, tmp_path):
    one = run("rank", supernet, "--archs", 3, *RECIPE, "-o", tmp_path / "one")
    assert one.exit_code == 0, one.output
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                           "-m", "hwnas.cli", "rank", str(supernet), "--archs", "3", *RECIPE, "-o", str(tmp_path / "two")],
                          env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("verdict:") == 1, "only rank 0 reports"
    a, b = pd.read_csv(tmp_path / "one" / "rank.csv"), pd.read_csv(tmp_path / "two" / "rank.csv")
    pd.testing.assert_frame_equal(a, b)
    owners = {p.parent.name: p.name.split(".")[-2] for p in (tmp_path / "two").glob("runs/*/events.*")}
    assert len(set(owners.values())) == 2, "both processes trained"
    assert rank_module.RANK_CSV == "rank.csv"

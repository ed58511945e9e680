"""``hwnas predictor fit`` and ``hwnas search --predictor`` end to end on a tiny synthetic supernet."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from hwnas.search.predictor import Predictor
from hwnas.supernet.evaluator import SupernetEvaluator
from hwnas.testing import synthetic_table
from cli_helpers import run, one_line_error, same_rows

REPO = Path(__file__).resolve().parents[2]
RECIPE = ["--epochs", "1", "--steps-per-epoch", "2", "--batch-size", "8", "--no-progress", "--threads", "1"]
FIT = ["--no-progress", "--threads", "1"]

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    """A tiny spos supernet, its table, and a predictor fitted on 24 of its architectures."""
    from hwnas.testing import tiny_supernet_run
    from hwnas.training.trained import load_supernet

    work = tmp_path_factory.mktemp("fit")
    supernet = tiny_supernet_run(work / "supernet", width=0.25, synthetic_size=64, batch_size=8)
    table = synthetic_table(load_supernet(supernet)[0].space, path=work / "spos.jsonl")
    fitted = run("predictor", "fit", "--supernet", supernet, "--samples", 24, *FIT, "-o", work / "p.json")
    assert fitted.exit_code == 0, fitted.output
    return work, supernet, table


def test_fit_writes_a_predictor_its_scores_and_held_out_figures(work, tmp_path):
    folder, supernet, _ = work
    predictor = Predictor.load(folder / "p.json")
    assert predictor.target == "supernet" and predictor.fitted_on["samples"] == 24
    assert predictor.fitted_on["supernet"] == str(supernet.resolve())
    assert predictor.fitted_on["evaluator"]["bn_batches"] == 2
    scores = [json.loads(line) for line in (folder / "p.json.scores.jsonl").read_text().splitlines()]
    assert scores[0]["kind"] == "hwnas-predictor-scores" and len(scores) == 25
    rows = predictor.fitted_on["heldout"]["rows"]
    assert [(r["against"], r["estimate"]) for r in rows] == [("supernet score", "predictor"), ("supernet score", "macs"),
                                                           ("supernet score", "params")]
    assert "validation images each: a standard error of" in predictor.fitted_on["heldout"]["noise"]
    shown, summary = same_rows("predictor", "show", folder / "p.json")
    assert summary["target"] == "supernet" and [r["estimate"] for r in shown] == [r["estimate"] for r in rows]


def test_a_second_fit_reuses_the_scores(work, tmp_path, monkeypatch):
    folder, supernet, _ = work
    (tmp_path / "p.json.scores.jsonl").write_text((folder / "p.json.scores.jsonl").read_text())
    calls = []
    real = SupernetEvaluator._evaluate
    monkeypatch.setattr(SupernetEvaluator, "_evaluate", lambda self, arch: calls.append(arch) or real(self, arch))
    again = run("predictor", "fit", "--supernet", supernet, "--samples", 30, *FIT, "-o", tmp_path / "p.json")
    assert again.exit_code == 0, again.output
    assert len(calls) == 6, "only the 6 architectures beyond the first 24 are scored"
    rows, summary = same_rows("predictor", "fit", "--supernet", supernet, "--samples", 30, *FIT, "-o", tmp_path / "p.json")
    assert len(calls) == 6 and summary["target"] == "supernet" and {r["estimate"] for r in rows} >= {"predictor", "macs"}
    first = Predictor.load(folder / "p.json")
    assert Predictor.load(tmp_path / "p.json").stage1.coef.shape == first.stage1.coef.shape


def test_fit_with_standalone_trainings_estimates_standalone_accuracy(work, tmp_path):
    folder, supernet, _ = work
    ranked = run("rank", supernet, "--archs", 6, *RECIPE, "-o", tmp_path / "r")
    assert ranked.exit_code == 0, ranked.output
    fitted = run("predictor", "fit", "--supernet", supernet, "--samples", 24, "--standalone", tmp_path / "r", *FIT,
                 "-o", tmp_path / "p.json", "--format", "json")
    assert fitted.exit_code == 0, fitted.output
    data = json.loads(fitted.output)
    data = {**data["summary"], "rows": data["rows"]}
    assert data["target"] == "standalone"
    against = [(r["against"], r["estimate"]) for r in data["rows"]]
    assert ("stand-alone test acc", "predictor") in against and ("stand-alone test acc", "supernet") in against
    assert {d["compared"] for d in data["differences"]} >= {"predictor - macs", "predictor - supernet"}
    predictor = Predictor.load(tmp_path / "p.json")
    assert predictor.fitted_on["standalone_archs"] == 6
    scored = {json.loads(line).get("arch") for line in (tmp_path / "p.json.scores.jsonl").read_text().splitlines()[1:]}
    assert set(pd.read_csv(tmp_path / "r" / "rank.csv")["arch"]) <= scored, "the stand-alone architectures are scored"
    _, _, table = work
    found = run("search", "--space", "spos", "--table", table.path, "--target-latency", "1000", "--supernet", supernet,
                "--predictor", tmp_path / "p.json", "--population", 10, "--generations", 2, "-o", tmp_path / "s",
                "--format", "json")
    assert found.exit_code == 0, found.output
    assert pd.read_csv(tmp_path / "s" / "candidates.csv")["rescored_accuracy"].isna().all(), \
        "a predictor of stand-alone accuracy is not re-scored by the supernet unless --rescore asks"
    assert json.loads(found.stdout)["rows"][0]["scored_by"] == "predictor"


def test_bad_fits_are_one_line(work, tmp_path):
    folder, supernet, _ = work
    one_line_error(run("predictor", "fit", "--supernet", supernet, "--samples", 5, *FIT, "-o", tmp_path / "p.json"),
                   "Invalid value for '--samples'")
    one_line_error(run("predictor", "fit", "--supernet", tmp_path / "gone", *FIT, "-o", tmp_path / "p.json"),
                   "--supernet must be a trained supernet's run directory")
    one_line_error(run("predictor", "fit", "--supernet", supernet, "--standalone", folder, *FIT, "-o", tmp_path / "p.json"),
                   "--standalone must name a finished ranking or report")
    (tmp_path / "dir.json").mkdir()
    one_line_error(run("predictor", "fit", "--supernet", supernet, *FIT, "-o", tmp_path / "dir.json"),
                   "is a directory")
    assert not (tmp_path / "p.json").exists()


def test_search_with_the_predictor_rescores_its_best(work, tmp_path, monkeypatch):
    folder, supernet, table = work
    out = tmp_path / "s"
    done = run("search", "--space", "spos", "--table", table.path, "--target-latency", "1000", "--supernet", supernet,
               "--predictor", folder / "p.json", "--population", 40, "--generations", 3, "--rescore", 4, "-o", out,
               "--format", "json")
    assert done.exit_code == 0, done.output
    frame = pd.read_csv(out / "candidates.csv")
    assert len(frame) > 60 and set(frame["estimator"]) == {"predictor", "predictor, supernet"}
    rescored = frame[frame["estimator"] == "predictor, supernet"]
    assert len(rescored) == 4 and rescored["rescored_accuracy"].notna().all()
    top = frame.sort_values(["accuracy"], ascending=False).head(4)
    assert set(top["arch"]) == set(rescored["arch"]), "the predictor's four best are re-scored"
    best = json.loads((out / "best.json").read_text())
    assert best["arch"] == rescored.sort_values("rescored_accuracy", ascending=False)["arch"].iloc[0]
    assert best["estimator"] == "predictor" and best["rescored_accuracy"] == rescored["rescored_accuracy"].max()
    config = json.loads((out / "config.json").read_text())
    assert config["evaluator"]["kind"] == "predictor" and config["rescore"]["count"] == 4
    assert json.loads(done.stdout)["rows"][0]["scored_by"] == "supernet (re-scored)"
    calls = []
    monkeypatch.setattr(SupernetEvaluator, "_evaluate", lambda self, arch: calls.append(arch))
    again = run("search", "--space", "spos", "--table", table.path, "--target-latency", "1000", "--supernet", supernet,
                "--predictor", folder / "p.json", "--population", 40, "--generations", 3, "--rescore", 4, "-o", out)
    assert again.exit_code == 0 and not calls, "a finished search resumes without scoring again"
    unchecked = run("search", "--space", "spos", "--table", table.path, "--target-latency", "1000",
                    "--predictor", folder / "p.json", "--rescore", 0, "--population", 10, "--generations", 2,
                    "-o", tmp_path / "u")
    assert unchecked.exit_code == 0, unchecked.output
    assert pd.read_csv(tmp_path / "u" / "candidates.csv")["rescored_accuracy"].isna().all()


def test_bad_predictor_searches_are_one_line(work, tmp_path):
    folder, supernet, table = work
    common = ["search", "--space", "spos", "--table", table.path, "--target-latency", "1000", "--supernet", supernet]
    one_line_error(run(*common, "--strategy", "differentiable", "--predictor", folder / "p.json", "--dataset",
                       "synthetic", "-o", tmp_path / "s"), "--predictor scores the candidates of random and evolution")
    (tmp_path / "bad.json").write_text("{")
    one_line_error(run(*common, "--predictor", tmp_path / "bad.json", "-o", tmp_path / "s"),
                   "a predictor file must be JSON")
    other = json.loads((folder / "p.json").read_text())
    other["space"]["width"] = 0.5
    (tmp_path / "other.json").write_text(json.dumps(other))
    one_line_error(run(*common, "--predictor", tmp_path / "other.json", "-o", tmp_path / "s"),
                   "a predictor only scores architectures of the space it was fitted for")
    one_line_error(run("search", "--space", "spos", "--table", table.path, "--target-latency", "1000",
                       "--predictor", folder / "p.json", "-o", tmp_path / "s"),
                   "needs --supernet RUN_DIR (to re-score the predictor's best; --rescore 0")
    assert not (tmp_path / "s").exists()


@pytest.mark.slow
def test_torchrun_two_processes_score_as_one(work, tmp_path):
    _, supernet, _ = work
    one = run("predictor", "fit", "--supernet", supernet, "--samples", 24, *FIT, "-o", tmp_path / "one.json")
    assert one.exit_code == 0, one.output
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                           "-m", "hwnas.cli", "predictor", "fit", "--supernet", str(supernet), "--samples", "24", *FIT,
                           "-o", str(tmp_path / "two.json")], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    a, b = (Predictor.load(tmp_path / f"{n}.json") for n in ("one", "two"))
    scores = [[json.loads(line) for line in (tmp_path / f"{n}.json.scores.jsonl").read_text().splitlines()[1:]]
              for n in ("one", "two")]
    assert scores[0] == scores[1] and a.stage1.coef.tolist() == pytest.approx(b.stage1.coef.tolist())


def test_fit_refuses_to_replace_a_file_that_is_not_a_predictor_or_an_input(work, tmp_path):
    folder, supernet, table = work
    config = (supernet / "config.json").read_bytes()
    refused = run("predictor", "fit", "--supernet", supernet, "--samples", 24, *FIT, "-o", supernet / "config.json")
    one_line_error(refused, f"is inside {supernet}, which it reads")
    assert (supernet / "config.json").read_bytes() == config and not (supernet / "config.json.scores.jsonl").exists()
    inside = run("predictor", "fit", "--supernet", supernet, "--samples", 24, *FIT, "-o", supernet / "p.json")
    one_line_error(inside, f"is inside {supernet}, which it reads")
    assert not (supernet / "p.json").exists()
    kept = table.path.read_bytes()
    one_line_error(run("predictor", "fit", "--supernet", supernet, "--samples", 24, "--table", table.path, *FIT,
                       "-o", table.path),
                   "a predictor file must be apart from the command's inputs")
    lookup = tmp_path / "t.jsonl"
    lookup.write_bytes(kept)
    one_line_error(run("predictor", "fit", "--supernet", supernet, "--samples", 24, *FIT, "-o", lookup),
                   f"{lookup} exists and is not a hwnas-predictor file, so it is not replaced")
    assert lookup.read_bytes() == kept == table.path.read_bytes()

"""The accuracy predictor: ridge with leave-one-out penalties, its two stages, its file and its evaluator."""

import json
import random

import numpy as np
import pytest

from hwnas.errors import ConfigError
from hwnas.search.predictor import Predictor, PredictorEvaluator
from hwnas.search.ridge import fit_ridge, out_of_fold
from hwnas.space import get_space
from hwnas.testing import synthetic_table


def test_leave_one_out_residuals_equal_refitting_without_the_sample():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(25, 4)), rng.normal(size=25)
    fit = fit_ridge(x, y, grid=[0.4])
    n = len(y)
    loo = []
    for i in range(n):
        rest = np.arange(n) != i
        one = fit_ridge(x[rest], y[rest], grid=[0.4 * n / (n - 1)])  # the same absolute penalty
        loo.append(y[i] - one.predict(x[i:i + 1])[0])
    # centring depends on the left-out sample, so the closed form is close, not exact
    assert fit.loo_rmse == pytest.approx(float(np.sqrt(np.mean(np.square(loo)))), rel=0.05)


def test_ridge_recovers_a_linear_signal_and_drops_noise_columns_when_asked():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(200, 6))
    y = 3 * x[:, 0] + rng.normal(size=200) * 0.1
    fit = fit_ridge(x, y)
    assert fit.predict(x) == pytest.approx(y, abs=0.5)
    few = fit_ridge(x[:12, :], 3 * x[:12, 0], weights=[1e-3] + [1] * 5, allow_infinite=True)
    assert few.coef[0] > 0
    oof = out_of_fold(x, y, 5)
    assert np.corrcoef(oof, y)[0, 1] > 0.99


def _scored(space, n, seed=0):
    """Architectures with an accuracy that grows with their MACs and is hurt by one op."""
    rng = random.Random(seed)
    archs = [space.sample(rng) for _ in range(n)]
    predictor = Predictor.fit(space, [(a, 50.0) for a in archs[:10]])
    size = predictor.size_features(predictor.indices(archs))
    penalty = np.array([sum(op == "xception" for op in a.ops) for a in archs])
    scores = 40 + 5 * (size[:, 0] - size[:, 0].mean()) - 0.5 * penalty
    return archs, scores


def test_the_predictor_learns_size_and_ops():
    space = get_space("spos", "cifar10", width=0.25)
    archs, scores = _scored(space, 200)
    predictor = Predictor.fit(space, list(zip(archs[:150], scores[:150])))
    held = predictor.predict(archs[150:])
    assert np.corrcoef(held, scores[150:])[0, 1] > 0.95 and predictor.target == "supernet"
    standalone = [(a, 80 + 0.1 * s) for a, s in zip(archs[150:170], scores[150:170])]
    two = Predictor.fit(space, list(zip(archs[:150], scores[:150])), standalone=standalone)
    assert two.target == "standalone" and np.mean(two.predict(archs[170:])) == pytest.approx(84, abs=0.5)
    assert ((0 <= two.predict(archs)) & (two.predict(archs) <= 100)).all()


def test_a_saved_predictor_predicts_the_same(tmp_path):
    space = get_space("spos", "cifar10", width=0.25)
    table = synthetic_table(space, path=tmp_path / "t.jsonl")
    archs, scores = _scored(space, 60)
    predictor = Predictor.fit(space, list(zip(archs[:40], scores[:40])), table=table,
                              standalone=[(a, float(s)) for a, s in zip(archs[40:50], scores[40:50])],
                              fitted_on={"samples": 40})
    assert predictor.uses_latency
    predictor.save(tmp_path / "p.json")
    loaded = Predictor.load(tmp_path / "p.json")
    assert loaded.predict(archs) == pytest.approx(predictor.predict(archs))
    assert loaded.digest() == predictor.digest() and loaded.fitted_on == {"samples": 40}
    text = (tmp_path / "p.json").read_text()
    assert "NaN" not in text and json.loads(text)["kind"] == "hwnas-predictor"


def test_a_predictor_refuses_another_space(tmp_path):
    space = get_space("spos", "cifar10", width=0.25)
    archs, scores = _scored(space, 30)
    predictor = Predictor.fit(space, list(zip(archs, scores)))
    predictor.check_for(space)
    for other, said in ((get_space("spos", "cifar10", width=0.5), "width 0.25 != 0.5"),
                        (get_space("spos", "cifar100", width=0.25), "input"),
                        (get_space("fbnet", "cifar10", width=0.25), "space 'spos' != 'fbnet'")):
        with pytest.raises(ConfigError, match="only scores architectures of the space it was fitted for") as error:
            predictor.check_for(other)
        assert said in str(error.value)
    with pytest.raises(ConfigError, match="at least 10 supernet-scored architectures"):
        Predictor.fit(space, list(zip(archs[:5], scores[:5])))


@pytest.mark.parametrize("change,message", [
    (lambda d: "not json", "a predictor file must be a JSON object"),
    (lambda d: {**d, "kind": "hwnas-search"}, "must be of kind 'hwnas-predictor'"),
    (lambda d: {**d, "version": 9}, "must be of version 1"),
    (lambda d: {k: v for k, v in d.items() if k != "stage1"}, "must hold 'stage1'"),
    (lambda d: {**d, "stage1": {**d["stage1"], "coef": d["stage1"]["coef"][:-1]}}, "stage1 must hold 'coef' as"),
    (lambda d: {**d, "op_names": d["op_names"][:-1]}, "op_costs.macs must hold one non-negative number per op"),
    (lambda d: {**d, "target": "standalone"}, "must say its target (supernet)"),
    (lambda d: {**d, "stage1": {**d["stage1"], "coef": [1e308] * len(d["stage1"]["coef"])}},
     "stage1 must hold 'coef' as numbers of magnitude at most 1e+12, but has 1e+308"),
    (lambda d: {**d, "stage1": {**d["stage1"], "intercept": -1e300}},
     "stage1 must hold 'intercept' as a number of magnitude at most 1e+12"),
    (lambda d: {**d, "stage1": {**d["stage1"], "scale": [1e-300] * len(d["stage1"]["scale"])}},
     "stage1 must hold scales of at least 1e-12"),
])
def test_a_bad_predictor_file_is_one_line(tmp_path, change, message):
    space = get_space("spos", "cifar10", width=0.25)
    archs, scores = _scored(space, 20)
    path = tmp_path / "p.json"
    Predictor.fit(space, list(zip(archs, scores))).save(path)
    path.write_text(json.dumps(change(json.loads(path.read_text()))))
    with pytest.raises(ConfigError) as error:
        Predictor.load(path)
    assert message in str(error.value) and "\n" not in str(error.value)


def test_predictor_show_refuses_absurd_coefficients(tmp_path):
    from cli_helpers import one_line_error, run

    space = get_space("spos", "cifar10", width=0.25)
    archs, scores = _scored(space, 20)
    path = tmp_path / "p.json"
    Predictor.fit(space, list(zip(archs, scores))).save(path)
    data = json.loads(path.read_text())
    data["stage1"]["coef"] = [1e308] * len(data["stage1"]["coef"])
    path.write_text(json.dumps(data))
    one_line_error(run("predictor", "show", path), "must hold 'coef' as numbers of magnitude at most 1e+12")


def test_a_non_json_predictor_file_is_one_line(tmp_path):
    (tmp_path / "p.json").write_bytes(b"\x00\xff binary")
    with pytest.raises(ConfigError, match="a predictor file must be UTF-8 text"):
        Predictor.load(tmp_path / "p.json")


def test_the_evaluator_scores_a_batch_as_one_by_one():
    space = get_space("spos", "cifar10", width=0.25)
    archs, scores = _scored(space, 40)
    predictor = Predictor.fit(space, list(zip(archs, scores)))
    batch, single = PredictorEvaluator(predictor), PredictorEvaluator(predictor)
    assert batch.many(archs) == pytest.approx([single(a) for a in archs])
    assert batch.evaluations == len(set(map(str, archs))) and batch.describe()["kind"] == "predictor"

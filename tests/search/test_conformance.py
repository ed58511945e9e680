"""The contract of `hwnas.search.SearchStrategy`, checked for every registered strategy.

Every strategy in `STRATEGIES` is run on the same synthetic problem (a ProxylessNAS space, a made-up
table, an accuracy that grows with MACs). To add a strategy, register it and give it an entry in
`FAST_SETTINGS` (settings that finish in a few seconds); a strategy that trains its own supernet gets
what it needs through `context_for` (``supernet=`` / ``data=`` of `run_search`).
"""

import json

import numpy as np
import pytest

from hwnas.errors import ConfigError
from hwnas.search import STRATEGIES, make_strategy, run_search
from hwnas.search.testing import SyntheticEvaluator

FAST_SETTINGS = {
    "random": {"samples": 40, "chunk": 16},
    "evolution": {"population": 12, "generations": 4, "parents": 4},
    "differentiable": {"epochs": 2, "warmup_epochs": 1, "steps_per_epoch": 1},
}


def context_for(name, space):
    """Extra arguments of run_search a strategy needs beyond the evaluator: a fresh, identically initialised
    supernet and tiny synthetic data for the strategy that trains one."""
    if name != "differentiable":
        return {}
    import torch

    from hwnas.supernet.data import build_loaders
    from hwnas.supernet.supernet import SuperNet

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        supernet = SuperNet(space)
    return {"supernet": supernet, "data": build_loaders("synthetic", batch_size=4, synthetic_size=16, seed=0)}


@pytest.fixture(params=STRATEGIES.names())
def name(request):
    return request.param


pytestmark = pytest.mark.usefixtures("one_thread")


def search(name, space, tables, target_ms, *, seed=0, evaluator=None, **kwargs):
    strategy = make_strategy(name, **FAST_SETTINGS[name])
    return run_search(strategy, space=space, tables=tables, target_ms=target_ms, seed=seed,
                      evaluator=evaluator if evaluator is not None else SyntheticEvaluator(space),
                      references=False, **context_for(name, space), **kwargs)


def trace(result):
    return [(str(c.arch), c.accuracy, c.latency_ms, c.generation, c.origin) for c in result.candidates]


def test_every_strategy_is_covered():
    assert set(STRATEGIES.names()) == set(FAST_SETTINGS)


def test_results_lie_in_the_space(name, space, table, median_ms):
    result = search(name, space, [table], median_ms)
    assert result.candidates and result.best is not None
    for c in result.candidates:
        assert space.validate(c.arch) == c.arch
    assert len({str(c.arch) for c in result.candidates}) == len(result.candidates)
    assert result.best in result.candidates


def test_same_seed_same_result(name, space, table, median_ms):
    first = search(name, space, [table], median_ms, seed=7)
    again = search(name, space, [table], median_ms, seed=7)
    assert trace(first) == trace(again) and first.best == again.best


def test_returned_candidates_satisfy_the_constraint(name, space, table, phone_table, median_ms):
    rng = np.random.default_rng(0)
    macs = [table.predict(space.from_indices([int(rng.integers(n)) for n in space.num_ops])).macs for _ in range(300)]
    max_macs = float(np.percentile(macs, 60))
    target = 0.95 * median_ms
    result = search(name, space, [table, phone_table], target, max_macs=max_macs)
    assert result.best is not None and result.best.feasible
    for c in result.candidates:
        p = table.predict(c.arch)
        really = p.latency_ms <= target + 1e-9 and p.macs <= max_macs
        assert c.feasible == really
        assert c.latency_ms[0] == pytest.approx(p.latency_ms) and c.macs == p.macs and c.params == p.params
        assert c.latency_ms[1] == pytest.approx(phone_table.predict(c.arch).latency_ms)
    assert all(c.feasible for c in result.feasible) and result.best in result.feasible
    assert result.best.accuracy == max(c.accuracy for c in result.feasible)


def test_each_architecture_is_evaluated_once(name, space, table, median_ms):
    evaluator = SyntheticEvaluator(space)
    result = search(name, space, [table], median_ms, evaluator=evaluator)
    assert evaluator.evaluations == len(result.candidates) == result.evaluations
    # a second search with the same evaluator takes everything from its cache
    again = search(name, space, [table], median_ms, evaluator=evaluator)
    assert again.evaluations == 0 and trace(again) == trace(result)


def test_unreachable_target_is_an_error(name, space, table):
    lowest = table.minimum_latency()
    with pytest.raises(ConfigError, match=f"smallest latency of space 'proxylessnas' on cpu \\({lowest:.6g} ms"):
        search(name, space, [table], 0.9 * lowest)


def test_settings_are_json_and_unknown_ones_refused(name):
    strategy = make_strategy(name, **FAST_SETTINGS[name])
    assert json.loads(json.dumps(strategy.settings())) == strategy.settings()
    with pytest.raises(ConfigError, match=f"strategy '{name}' takes settings .*but got bogus"):
        make_strategy(name, bogus=1)


def test_interrupted_search_resumes_to_the_same_result(name, space, table, median_ms, tmp_path):
    whole = search(name, space, [table], median_ms, seed=3)

    class Stop(Exception):
        pass

    def stop_after_first_step(progress):
        if progress.done >= 1:
            raise Stop

    with pytest.raises(Stop):
        search(name, space, [table], median_ms, seed=3, output=tmp_path, on_progress=stop_after_first_step)
    state = json.loads((tmp_path / "state.json").read_text())
    assert not state["done"] and len(state["evaluated"]) < len(whole.candidates)
    evaluator = SyntheticEvaluator(space)
    resumed = search(name, space, [table], median_ms, seed=3, output=tmp_path, evaluator=evaluator)
    assert trace(resumed) == trace(whole)
    assert evaluator.evaluations == len(whole.candidates) - len(state["evaluated"])
    assert json.loads((tmp_path / "state.json").read_text())["done"]

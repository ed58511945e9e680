"""Conformance suite of evaluators: the `hwnas.supernet.evaluator.Evaluator` contract.

`check_evaluator(make, archs)` takes a function that builds a fresh evaluator (two fresh ones must
score alike) and a few architectures of its space, and checks:

- scores are floats in [0, 100] (percent), the same whatever was evaluated before and in whatever order
  (two fresh evaluators walking ``archs`` forwards and backwards agree exactly, and an architecture scored
  again after the cache was emptied gets the same score);
- the cache is keyed by the architecture, whatever form it is given in (`Architecture`, string, list of
  ops): a repeated architecture does not call ``_evaluate`` again, and ``evaluations`` counts the calls;
- ``preload`` fills the cache, so a preloaded architecture is never evaluated;
- ``describe()`` is a JSON-serialisable dict with a ``kind`` that does not change as the evaluator is used.

`check_supernet_evaluator(evaluator, archs)` adds what `SupernetEvaluator` promises beyond that:
``accuracy(arch)`` is the cached ranking score, ``accuracy(arch, recalibrate=False)`` a cached percentage
with the inherited BN statistics, and evaluating never modifies the supernet.

A new evaluator: subclass `Evaluator` and call ``check_evaluator(lambda: MyEvaluator(...), archs)``; the
project's tests run it for `hwnas.testing.SyntheticEvaluator` and a tiny trained supernet's evaluator.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence

import torch

from hwnas.space import Architecture
from hwnas.supernet.evaluator import Evaluator, SupernetEvaluator


class _CountingCalls:
    """Wraps an evaluator's ``_evaluate`` to count the calls that reach it."""

    def __init__(self, evaluator: Evaluator):
        self.calls: list[str] = []
        self._evaluate = evaluator._evaluate
        evaluator._evaluate = self  # type: ignore[method-assign]

    def __call__(self, arch: Architecture) -> float:
        self.calls.append(str(arch))
        return self._evaluate(arch)


def check_evaluator(make: Callable[[], Evaluator], archs: Sequence[Architecture]) -> None:
    """Every check of this module for the evaluators ``make`` builds, on at least two distinct ``archs``."""
    archs = list(archs)
    assert len({str(a) for a in archs}) >= 2, f"check_evaluator needs two distinct architectures, but got {archs}"
    forwards, backwards = make(), make()
    kind = _check_describe(forwards)
    scores = {str(a): forwards(a) for a in archs}
    reversed_scores = {str(a): backwards(a) for a in reversed(archs)}
    for key, score in scores.items():
        assert isinstance(score, float) and math.isfinite(score) and 0 <= score <= 100, \
            f"{type(forwards).__name__} must score in percent, a float in [0, 100], but scored {key} {score!r}"
    assert scores == reversed_scores, \
        f"{type(forwards).__name__} must score an architecture alike whatever was evaluated before, but scores " \
        f"{_differences(scores, reversed_scores)} changed with the order"
    first = str(archs[0])
    forwards.cache.clear()
    assert forwards(archs[0]) == scores[first], \
        f"{type(forwards).__name__} must score {first} alike when evaluated again, but scored {forwards(archs[0])} " \
        f"instead of {scores[first]}"
    assert _check_describe(forwards) == kind
    _check_cache(make, archs)
    _check_preload(make, archs)


def _differences(a: dict[str, float], b: dict[str, float]) -> str:
    return ", ".join(f"{k}: {a[k]} then {b[k]}" for k in a if a[k] != b[k])


def _check_describe(evaluator: Evaluator) -> str:
    description = evaluator.describe()
    name = type(evaluator).__name__
    assert isinstance(description, dict) and isinstance(description.get("kind"), str), \
        f"{name}.describe() must be a dict with a 'kind' string, but is {description!r}"
    try:
        again = json.loads(json.dumps(description))
    except (TypeError, ValueError) as error:
        raise AssertionError(f"{name}.describe() must be JSON-serialisable, but is not ({error})") from None
    assert again == description, \
        f"{name}.describe() must survive JSON unchanged, but {description} came back as {again}"
    return description["kind"]


def _check_cache(make: Callable[[], Evaluator], archs: Sequence[Architecture]) -> None:
    evaluator = make()
    counter = _CountingCalls(evaluator)
    name = type(evaluator).__name__
    arch = archs[0]
    scores = [evaluator(arch), evaluator(str(arch)), evaluator(list(arch.ops)), evaluator(Architecture(arch.ops))]
    assert counter.calls == [str(arch)] and len(set(scores)) == 1, \
        f"{name} must evaluate a repeated architecture once, whatever form it is given in, but evaluated " \
        f"{len(counter.calls)} times ({counter.calls})"
    for other in archs[1:]:
        evaluator(other)
    distinct = len({str(a) for a in archs})
    assert len(counter.calls) == evaluator.evaluations == distinct, \
        f"{name} must evaluate each of {distinct} architectures once and count it in evaluations, but _evaluate " \
        f"ran {len(counter.calls)} times and evaluations says {evaluator.evaluations}"


def _check_preload(make: Callable[[], Evaluator], archs: Sequence[Architecture]) -> None:
    evaluator = make()
    counter = _CountingCalls(evaluator)
    name = type(evaluator).__name__
    evaluator.preload({str(archs[0]): 42.5})
    score = evaluator(archs[0])
    assert score == 42.5 and not counter.calls and evaluator.evaluations == 0, \
        f"{name}.preload must fill the cache, but a preloaded architecture scored {score} after {len(counter.calls)} " \
        f"evaluations"


def _snapshot(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def check_supernet_evaluator(evaluator: SupernetEvaluator, archs: Sequence[Architecture]) -> None:
    """`SupernetEvaluator`'s own promises, on a fresh ``evaluator``: cached recalibrated and inherited
    accuracies, and a supernet left as it was."""
    before, training = _snapshot(evaluator.supernet), evaluator.supernet.training
    counter = _CountingCalls(evaluator)
    for arch in archs:
        ranked = evaluator(arch)
        assert evaluator.accuracy(arch) == ranked and evaluator.accuracy(str(arch), recalibrate=True) == ranked, \
            f"SupernetEvaluator.accuracy({arch}) must be the score it ranks by ({ranked}), but is " \
            f"{evaluator.accuracy(arch)}"
        inherited = evaluator.accuracy(arch, recalibrate=False)
        assert isinstance(inherited, float) and 0 <= inherited <= 100, \
            f"SupernetEvaluator.accuracy({arch}, recalibrate=False) must be a percentage, but is {inherited!r}"
        assert evaluator.accuracy(arch, recalibrate=False) == inherited, \
            f"SupernetEvaluator.accuracy({arch}, recalibrate=False) must not change between calls"
    distinct = len({str(a) for a in archs})
    assert len(counter.calls) == distinct, \
        f"SupernetEvaluator must recalibrate and evaluate each of {distinct} architectures once, but did " \
        f"{len(counter.calls)} times"
    changed = [k for k, v in evaluator.supernet.state_dict().items() if not torch.equal(v, before[k])]
    assert not changed and evaluator.supernet.training == training, \
        f"SupernetEvaluator must never modify its supernet, but changed {changed[:3]} (training mode " \
        f"{training} -> {evaluator.supernet.training})"

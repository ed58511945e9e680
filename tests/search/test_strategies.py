"""What random search and evolution do beyond the shared contract (see test_conformance.py)."""

import random

import numpy as np
import pytest

from hwnas.errors import ConfigError
from hwnas.search import STRATEGIES, Constraint, Evolution, RandomSearch, SearchContext, run_search
from hwnas.testing import SyntheticEvaluator


def run(strategy, space, table, target_ms, **kwargs):
    return run_search(strategy, space=space, tables=[table], target_ms=target_ms, evaluator=SyntheticEvaluator(space),
                      references=False, **kwargs)


def test_defaults_are_the_seeds():
    evolution = Evolution()
    assert (evolution.population, evolution.generations, evolution.parents, evolution.mutation_prob,
            evolution.crossover) == (60, 20, 10, 0.1, True)
    assert RandomSearch().samples == 1000


@pytest.mark.parametrize("settings,message", [
    ({"population": 0}, "population must be an integer >= 1, but got population=0"),
    ({"generations": 2.5}, "generations must be an integer, but got generations=2.5"),
    ({"mutation_prob": 1.5}, r"mutation_prob must lie in \[0, 1\], but got mutation_prob=1.5"),
    ({"crossover": "yes"}, "crossover must be true or false"),
])
def test_bad_evolution_settings(settings, message):
    with pytest.raises(ConfigError, match=message):
        STRATEGIES.create("evolution", **settings)


@pytest.mark.parametrize("cls", [RandomSearch, Evolution])
def test_the_seed_matters(cls, space, table, median_ms):
    settings = {"samples": 10} if cls is RandomSearch else {"population": 6, "generations": 2, "parents": 2}
    first, other = (run(cls(**settings), space, table, median_ms, seed=seed) for seed in (7, 8))
    assert [str(c.arch) for c in first.candidates] != [str(c.arch) for c in other.candidates]


def test_random_evaluates_distinct_feasible_samples_with_progress(space, table, median_ms):
    seen = []
    result = run(RandomSearch(samples=30, chunk=8), space, table, median_ms, on_progress=seen.append)
    assert len(result.candidates) == 30 and len({str(c.arch) for c in result.candidates}) == 30
    assert all(c.feasible and c.origin == "random" and c.generation == 0 for c in result.candidates)
    assert all(p.total == 30 and p.task.startswith("random search, target") for p in seen)
    assert seen[0].done == 0 and "feasible 0/0" in seen[0].status
    assert sorted(set(p.done for p in seen)) == [0, 8, 16, 24, 30]
    assert [p.status for p in seen if p.done == 8][0].count("feasible 8/8") == 1  # counts update with every candidate
    assert "feasible 30/30" in seen[-1].status and "rejected 0" not in seen[-1].status
    assert f"best {result.best.accuracy:.2f} %" in seen[-1].status


def test_evolution_generations_mutation_and_crossover(space, table, median_ms):
    result = run(Evolution(population=10, generations=4, parents=3), space, table, median_ms)
    by_generation = {g: [c for c in result.candidates if c.generation == g] for g in range(4)}
    assert [len(v) for v in by_generation.values()] == [10, 10, 10, 10]
    assert {c.origin for c in by_generation[0]} == {"random"}
    for g in (1, 2, 3):
        origins = [c.origin for c in by_generation[g]]
        assert origins.count("mutation") == 5 and origins.count("crossover") == 5
    assert all(c.feasible for c in result.candidates)
    # evolution improves on its random start, generation by generation
    assert max(c.accuracy for c in result.candidates) > max(c.accuracy for c in by_generation[0])
    assert sum(c.accuracy for c in by_generation[3]) > sum(c.accuracy for c in by_generation[0])


def test_children_come_from_the_parents(space, table, median_ms):
    top_of_first = {}

    class Spy(Evolution):
        def _mutate(self, context, parents):
            child = super()._mutate(context, parents)
            top_of_first.setdefault(context.generation, parents)
            assert min(sum(a != b for a, b in zip(child, p)) for p in parents) >= 1
            return child

        def _cross(self, context, parents):
            child = super()._cross(context, parents)
            assert all(any(child[i] == p[i] for p in parents) for i in range(len(child)))
            return child

    result = run(Spy(population=8, generations=3, parents=3), space, table, median_ms)
    first = [c for c in result.candidates if c.generation == 0]
    best_three = sorted(first, key=lambda c: -c.accuracy)[:3]
    assert top_of_first[1] == [space.indices(c.arch) for c in best_three]


def test_mutation_changes_each_layer_with_its_probability(space, table):
    context = SearchContext(space, Constraint(table, 100.0), None, seed=0)
    parent = [0] * len(space.layers)
    never = Evolution(mutation_prob=0.0)
    always = Evolution(mutation_prob=1.0)
    for _ in range(50):
        assert sum(a != b for a, b in zip(never._mutate(context, [parent]), parent)) == 1  # at least one change
        assert all(a != b for a, b in zip(always._mutate(context, [parent]), parent))
    half = Evolution(mutation_prob=0.5)
    changed = np.mean([sum(a != b for a, b in zip(half._mutate(context, [parent]), parent)) for _ in range(200)])
    assert 0.4 * len(parent) < changed < 0.6 * len(parent)


def test_crossover_mixes_two_parents_layer_by_layer(space, table):
    context = SearchContext(space, Constraint(table, 100.0), None, seed=0)
    a, b = [0] * len(space.layers), [1] * len(space.layers)
    children = [Evolution()._cross(context, [a, b]) for _ in range(100)]
    assert all(set(child) <= {0, 1} for child in children)
    assert 0.4 < np.mean(children) < 0.6


def test_without_crossover_every_child_is_a_mutant(space, table, median_ms):
    result = run(Evolution(population=6, generations=2, parents=2, crossover=False), space, table, median_ms)
    assert [c.origin for c in result.candidates if c.generation == 1] == ["mutation"] * 6


def test_target_that_sampling_cannot_hit_is_an_error(space, table):
    """Only the fastest architecture meets this target: random draws practically never find it."""
    fastest = space.from_indices(int(np.argmin(lat)) for lat in table.latency_matrix()[1])
    target = table.predict(fastest).latency_ms
    strategy = Evolution(population=5, generations=3, patience=3000)
    strategy_random = RandomSearch(samples=5, patience=3000)
    with pytest.raises(ConfigError, match=r"no architecture met the constraint in 3000 random draws \(target "):
        run(strategy, space, table, target)
    with pytest.raises(ConfigError, match="raise the target or the patience"):
        run(strategy_random, space, table, target)


def test_rare_feasible_set_starts_small_then_fills_by_mutation(space, table):
    """A target that about 1 in 7000 random architectures meet: generation 0 is short, but mutation and
    crossover of those few, being local moves, find feasible children that uniform draws miss."""
    rng = random.Random(0)
    indices = np.array([space.indices(space.sample(rng)) for _ in range(20000)])
    target = float(np.sort(table.predict_indices(indices))[2])  # about 3 in 20000 draws
    result = run(Evolution(population=50, generations=3, parents=5, patience=20000, child_patience=500), space, table,
                 target)
    assert 1 <= len([c for c in result.candidates if c.generation == 0]) < 50
    assert any("generation 0 holds" in note for note in result.notes)
    assert [sum(c.generation == g for c in result.candidates) for g in (1, 2)] == [50, 50]
    assert all(c.feasible for c in result.candidates)


def test_no_new_feasible_child_ends_the_search(space, table):
    """Only the fastest architecture is feasible: every child of it is rejected, and evolution says so."""
    fastest = space.from_indices(int(np.argmin(lat)) for lat in table.latency_matrix()[1])
    constraint = Constraint(table, table.predict(fastest).latency_ms * (1 + 1e-9))
    context = SearchContext(space, constraint, SyntheticEvaluator(space), seed=0)
    context.sample_feasible = lambda n, patience, exclude=(): [fastest]  # what random draws practically never find
    Evolution(population=4, generations=5, child_patience=50).run(context)
    assert [c.arch for c in context.candidates] == [fastest]
    assert context.notes[-1] == "evolution stopped after generation 0: no new feasible child in 50 attempts in a row"
    assert context.rejected >= 50

"""Evolutionary search under the constraint, as SPOS (Guo et al. 2020) runs it over a trained supernet.

Generation 0 is ``population`` distinct feasible random architectures. Every later generation takes
as parents the ``parents`` most accurate feasible architectures evaluated so far (in any generation,
as SPOS keeps its top-k across the whole run), and makes ``population`` new children: half by
mutation (each layer resampled to another op with probability ``mutation_prob``, at least one layer
always changes), half by crossover (each layer taken from one of two distinct parents with equal
probability; when the parents are so alike that crossover runs out of new children, mutants make up
the shortfall). Children that are infeasible, already evaluated or already made in this generation are
rejected and drawn again; ``child_patience`` rejections in a row end the generation with fewer children.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial


from hwnas.errors import ConfigError, require_finite
from hwnas.search.base import SearchContext, SearchStrategy, check_ints, register_strategy
from hwnas.space import Architecture


@register_strategy("evolution")
@dataclass(frozen=True, kw_only=True)
class Evolution(SearchStrategy):
    """Mutation + crossover over the most accurate feasible architectures (defaults from the seed).

    Attributes:
        population: architectures per generation (generation 0 is random).
        generations: generations, generation 0 included; at most population x generations evaluations.
        parents: most accurate feasible architectures that children are made from.
        mutation_prob: probability that mutation resamples a layer.
        crossover: half of each generation by crossover; without it every child is a mutant.
        patience: rejected random draws in a row after which generation 0 stops with fewer
            architectures (draws are cheap: the constraint is checked on batches of them).
        child_patience: rejected children in a row after which a later generation stops with fewer;
            a generation with no new child ends the search.
    """

    population: int = 60
    generations: int = 20
    parents: int = 10
    mutation_prob: float = 0.1
    crossover: bool = True
    patience: int = 100_000
    child_patience: int = 2_000

    def __post_init__(self) -> None:
        require_finite(self)
        check_ints(self, population=1, generations=1, parents=1, patience=1, child_patience=1)
        if not 0 <= self.mutation_prob <= 1:
            raise ConfigError(f"mutation_prob must lie in [0, 1], but got mutation_prob={self.mutation_prob}")
        if not isinstance(self.crossover, bool):
            raise ConfigError(f"crossover must be true or false, but got crossover={self.crossover!r}")

    def run(self, context: SearchContext) -> None:
        context.begin(self.generations)
        context.generation = 0
        initial = context.sample_feasible(self.population, patience=self.patience)
        if not initial:
            raise ConfigError(context.infeasible_message(self.patience))
        if len(initial) < self.population:
            context.notes.append(f"generation 0 holds {len(initial)} of {self.population} architectures: random "
                                 f"sampling found no more feasible ones in {self.patience} draws in a row")
        context.evaluate(initial, origin="random")
        context.step(1, self.generations)
        for generation in range(1, self.generations):
            context.generation = generation
            parents = [context.space.indices(c.arch) for c in context.top(self.parents)]
            crossing = self.crossover and len(parents) >= 2
            n_mutants = self.population // 2 if crossing else self.population
            made: set[str] = set()
            mutate = partial(self._mutate, context, parents)
            mutants = self._children(context, mutate, n_mutants, made)
            crossed = self._children(context, partial(self._cross, context, parents), self.population - n_mutants,
                                     made) if crossing else []
            # close parents have few distinct crosses: mutants make up the shortfall
            mutants += self._children(context, mutate, self.population - len(mutants) - len(crossed), made)
            if not mutants and not crossed:
                context.notes.append(f"evolution stopped after generation {generation - 1}: no new feasible child "
                                     f"in {self.child_patience} attempts in a row")
                break
            if len(mutants) + len(crossed) < self.population:
                context.notes.append(f"generation {generation} holds {len(mutants) + len(crossed)} of "
                                     f"{self.population} architectures: no more new feasible children in "
                                     f"{self.child_patience} attempts in a row")
            context.evaluate(mutants, origin="mutation")
            context.evaluate(crossed, origin="crossover")
            context.step(generation + 1, self.generations)

    def _children(self, context: SearchContext, make: Callable[[], list[int]], n: int,
                  made: set[str]) -> list[Architecture]:
        names = [layer.op_names for layer in context.space.layers]
        children: list[Architecture] = []
        misses = 0
        while len(children) < n and misses < self.child_patience:
            indices = make()
            key = "-".join(ops[i] for ops, i in zip(names, indices))
            if key in made or context.is_evaluated(key) or not context.constraint.feasible_row(indices):
                misses += 1
                context.rejected += 1
                continue
            made.add(key)
            children.append(context.space.from_indices(indices))
            misses = 0
        return children

    def _mutate(self, context: SearchContext, parents: list[list[int]]) -> list[int]:
        rng, num_ops = context.rng, context.space.num_ops
        child = list(rng.choice(parents))
        changeable = [i for i, n in enumerate(num_ops) if n > 1]
        changed = [i for i in changeable if rng.random() < self.mutation_prob]
        if not changed and changeable:
            changed = [rng.choice(changeable)]
        for i in changed:
            other = rng.randrange(num_ops[i] - 1)  # any op but the current one
            child[i] = other + (other >= child[i])
        return child

    def _cross(self, context: SearchContext, parents: list[list[int]]) -> list[int]:
        rng = context.rng
        a, b = rng.sample(parents, 2)
        return [x if rng.random() < 0.5 else y for x, y in zip(a, b)]

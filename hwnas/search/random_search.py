"""Random search: ``samples`` distinct feasible architectures, drawn uniformly by rejection sampling."""

from __future__ import annotations

from dataclasses import dataclass

from hwnas.errors import ConfigError
from hwnas.search.base import SearchContext, SearchStrategy, check_ints, register_strategy


@register_strategy("random")
@dataclass(frozen=True, kw_only=True)
class RandomSearch(SearchStrategy):
    """Uniform random search under the constraint (the seed's default is 1000 samples).

    Attributes:
        samples: feasible architectures evaluated.
        patience: draws in a row without a new feasible architecture after which sampling stops
            with fewer (a draw is cheap: millions a second through the vectorised constraint).
        chunk: architectures evaluated between two checkpoints / progress updates.
    """

    samples: int = 1000
    patience: int = 1_000_000
    chunk: int = 50

    def __post_init__(self) -> None:
        check_ints(self, samples=1, patience=1, chunk=1)

    def run(self, context: SearchContext) -> None:
        context.begin(self.samples)
        archs = context.sample_feasible(self.samples, patience=self.patience)
        if not archs:
            raise ConfigError(context.infeasible_message(self.patience))
        if len(archs) < self.samples:
            context.notes.append(f"random sampling found {len(archs)} of {self.samples} feasible architectures "
                                 f"before {self.patience} draws in a row gave nothing new")
        for start in range(0, len(archs), self.chunk):
            context.evaluate(archs[start:start + self.chunk], origin="random")
            context.step(min(start + self.chunk, len(archs)), len(archs))

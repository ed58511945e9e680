"""Search under a hardware constraint: strategies, constraint, runner, results, Pareto charts.

Strategies are registered by name in `STRATEGIES` (``random``, ``evolution``, ``differentiable``); build one with
``STRATEGIES.create(name, **settings)`` and run it with `run_search` (or `run_sweep` for several targets),
scoring candidates with an `hwnas.supernet.evaluator.Evaluator` (`hwnas.training.open_evaluator(run_dir)` for
a trained supernet). `hwnas.search.pareto` / `hwnas.search.plot` chart searches, `hwnas.search.measure`
measures their fronts on the device.
"""

from hwnas.search import differentiable, evolution, random_search  # noqa: F401  (registration)
from hwnas.search.base import STRATEGIES, Candidate, SearchContext, SearchStrategy
from hwnas.search.constraints import Constraint, check_table, parse_count, parse_latencies, parse_latency
from hwnas.search.differentiable import DifferentiableSearch
from hwnas.search.evolution import Evolution
from hwnas.search.random_search import RandomSearch
from hwnas.search.results import SearchRecord, expand_search_dirs, load_search
from hwnas.search.runner import SearchResult, run_search, run_sweep

__all__ = [
    "STRATEGIES", "Candidate", "Constraint", "DifferentiableSearch", "Evolution", "RandomSearch", "SearchContext",
    "SearchRecord", "SearchResult", "SearchStrategy", "check_table", "expand_search_dirs", "load_search",
    "parse_count", "parse_latencies", "parse_latency", "run_search", "run_sweep",
]

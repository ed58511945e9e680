"""An accuracy predictor: an architecture's accuracy estimated from its op choices and size in microseconds,
so that a search can look at thousands of candidates a second and leave the supernet to re-score the last
few (Once-for-All's recipe, with a ridge regression where Once-for-All uses a small MLP).

The features of an architecture are its op choice in every searchable layer (one-hot) and the logarithms of
its MACs and parameters (and of its latency on a lookup table, when the predictor was fitted with one). Two
stages, both ridge regressions whose penalty leave-one-out error chooses (`hwnas.search.ridge`):

1. on architectures scored by a trained supernet (many, cheap, biased): supernet accuracy from the features;
2. optionally, on architectures trained stand-alone (few, costly, the truth): stand-alone validation accuracy
   from stage 1's prediction, log MACs and log params (almost unpenalised: a calibration) and the one-hot op
   choices (penalised, or dropped when the few samples say so). Stage 1 is the prior that few stand-alone
   measurements move gently.

A predictor's output is then the supernet's accuracy (``target`` ``supernet``) or the stand-alone validation
accuracy (``standalone``), in percent. It is saved as strict JSON (never pickled) with everything it needs to
predict (each op's MACs, parameters and latency), the space description it is valid for, and what it was fitted
on; `Predictor.check_for` refuses a space of another name, input profile or width in one line.
`hwnas.judge.fit` fits one from a supernet run (``hwnas predictor fit``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from hwnas import __version__
from hwnas.errors import ConfigError
from hwnas.files import dump_json, write_atomic
from hwnas.readers import read_json
from hwnas.search.predictor_file import KIND, VERSION, OpCosts, parse
from hwnas.search.ridge import RidgeFit, fit_ridge
from hwnas.space import Architecture, SearchSpace, as_architecture
from hwnas.supernet.evaluator import Evaluator
from hwnas.tables import LookupTable

#: penalty weight of stage 2's calibration columns (stage 1's prediction, log MACs, log params)
CALIBRATION_WEIGHT = 1e-3


def _padded(rows: Sequence[Sequence[float]]) -> np.ndarray:
    out = np.zeros((len(rows), max(len(r) for r in rows)))
    for i, row in enumerate(rows):
        out[i, :len(row)] = row
    return out


@dataclass
class Predictor:
    """A fitted accuracy predictor (see the module docstring); `fit` makes one, `load` reads one."""

    space: dict
    op_names: list[list[str]]
    costs: OpCosts
    stage1: RidgeFit
    stage2: RidgeFit | None = None
    fitted_on: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None

    def __post_init__(self) -> None:
        self._offsets = np.concatenate([[0], np.cumsum([len(ops) for ops in self.op_names])])
        self._rows = np.arange(len(self.op_names))
        self._size = [_padded(m) for m in (self.costs.macs, self.costs.params)]
        if self.costs.latency is not None:
            self._size.append(_padded(self.costs.latency))

    @property
    def target(self) -> str:
        """What the predictor estimates: ``supernet`` accuracy, or ``standalone`` validation accuracy."""
        return "supernet" if self.stage2 is None else "standalone"

    @property
    def uses_latency(self) -> bool:
        return self.costs.latency is not None

    # ----- features ------------------------------------------------------------------------------------
    def indices(self, archs: Sequence[Architecture | str]) -> np.ndarray:
        rows = []
        for arch in archs:
            ops = as_architecture(arch).ops
            if len(ops) != len(self.op_names):
                raise ConfigError(f"the predictor takes architectures of {len(self.op_names)} layers, but got "
                                  f"{len(ops)} ops in {str(arch)!r}")
            try:
                rows.append([names.index(op) for names, op in zip(self.op_names, ops)])
            except ValueError:
                raise ConfigError(f"architecture {str(arch)!r} holds an op the predictor's space does not offer in "
                                  f"that layer") from None
        return np.array(rows, dtype=int).reshape(len(rows), len(self.op_names))

    def size_features(self, indices: np.ndarray) -> np.ndarray:
        """(N, 2 or 3): log MACs, log params (and log latency) of an (N, layers) index array."""
        fixed = [v for v in self.costs.fixed if v is not None]
        columns = [np.log(np.maximum(matrix[self._rows, indices].sum(axis=1) + base, 1e-12))
                   for matrix, base in zip(self._size, fixed)]
        return np.stack(columns, axis=1)

    def one_hot(self, indices: np.ndarray) -> np.ndarray:
        out = np.zeros((len(indices), int(self._offsets[-1])))
        out[np.arange(len(indices))[:, None], indices + self._offsets[:-1]] = 1.0
        return out

    def stage1_features(self, indices: np.ndarray) -> np.ndarray:
        return np.hstack([self.one_hot(indices), self.size_features(indices)])

    def stage2_features(self, indices: np.ndarray, prior: np.ndarray) -> np.ndarray:
        return np.hstack([prior[:, None], self.size_features(indices)[:, :2], self.one_hot(indices)])

    # ----- prediction ----------------------------------------------------------------------------------
    def predict_indices(self, indices: np.ndarray) -> np.ndarray:
        """Predicted accuracy (%) of an (N, layers) array of op indices, within [0, 100]."""
        indices = np.asarray(indices, dtype=int)
        prior = self.stage1.predict(self.stage1_features(indices))
        out = prior if self.stage2 is None else self.stage2.predict(self.stage2_features(indices, prior))
        return np.clip(out, 0.0, 100.0)

    def predict(self, archs: Sequence[Architecture | str]) -> np.ndarray:
        return self.predict_indices(self.indices(archs))

    # ----- fitting -------------------------------------------------------------------------------------
    @classmethod
    def fit(cls, space: SearchSpace, scored: Sequence[tuple[Architecture | str, float]], *,
            standalone: Sequence[tuple[Architecture | str, float]] = (), table: LookupTable | None = None,
            fitted_on: dict[str, Any] | None = None) -> Predictor:
        """Stage 1 on ``scored`` (architecture, supernet accuracy %) pairs, stage 2 on ``standalone``
        (architecture, stand-alone validation accuracy %) pairs when there are any (see the module docstring)."""
        if len(scored) < 10:
            raise ConfigError(f"a predictor needs at least 10 supernet-scored architectures to fit, but got "
                              f"{len(scored)}")
        if standalone and len(standalone) < 5:
            raise ConfigError(f"the stand-alone stage needs at least 5 architectures trained stand-alone, but got "
                              f"{len(standalone)}")
        empty = RidgeFit(np.zeros(1), np.ones(1), np.zeros(1), 0.0, 0.0, 0.0)
        predictor = cls(space.describe(), [list(layer.op_names) for layer in space.layers], OpCosts.of(space, table),
                        empty, None, dict(fitted_on or {}))
        x1 = predictor.stage1_features(predictor.indices([a for a, _ in scored]))
        predictor.stage1 = fit_ridge(x1, np.array([s for _, s in scored], float))
        if standalone:
            indices = predictor.indices([a for a, _ in standalone])
            x2 = predictor.stage2_features(indices, predictor.stage1.predict(predictor.stage1_features(indices)))
            weights = [CALIBRATION_WEIGHT] * 3 + [1.0] * (x2.shape[1] - 3)
            predictor.stage2 = fit_ridge(x2, np.array([s for _, s in standalone], float), weights=weights,
                                         allow_infinite=True)
        return predictor

    # ----- compatibility and files ---------------------------------------------------------------------
    def check_for(self, space: SearchSpace) -> None:
        """Refuse a space other than the one the predictor was fitted for (name, input profile, width, ...)."""
        mine, theirs = self.space, space.describe()
        if mine != theirs:
            diffs = [f"{k} {mine.get(k)!r} != {theirs.get(k)!r}" for k in sorted(set(mine) | set(theirs))
                     if mine.get(k) != theirs.get(k)]
            raise ConfigError(f"a predictor only scores architectures of the space it was fitted for, but "
                              f"{self.path or 'the predictor'} differs from the search space: {'; '.join(diffs[:3])} "
                              f"(predictor != search)")

    def to_dict(self) -> dict:
        return {"kind": KIND, "version": VERSION, "hwnas": __version__, "target": self.target, "space": self.space,
                "op_names": self.op_names, "op_costs": self.costs.to_dict(), "stage1": self.stage1.to_dict(),
                "stage2": None if self.stage2 is None else self.stage2.to_dict(), "fitted_on": self.fitted_on}

    def digest(self) -> str:
        data = self.to_dict()
        data.pop("hwnas")
        return hashlib.sha256(dump_json(data, sort_keys=True).encode()).hexdigest()[:16]

    def save(self, path: str | Path) -> Path:
        text = dump_json(self.to_dict(), indent=1, nan_as_null=True) + "\n"  # an undefined statistic: null
        self.path = Path(path)
        return write_atomic(self.path, text)

    @classmethod
    def load(cls, path: str | Path) -> Predictor:
        """Read a predictor file; anything else (not JSON, another kind or version, fields of the wrong type or
        length) is one ConfigError naming the file."""
        return cls(**parse(read_json(path, "a predictor file", ConfigError), Path(path)))


class PredictorEvaluator(Evaluator):
    """Scores architectures with a `Predictor` (cached like every evaluator); `many` scores a batch at once."""

    def __init__(self, predictor: Predictor):
        super().__init__()
        self.predictor = predictor

    def _evaluate(self, arch: Architecture) -> float:
        return float(self.predictor.predict([arch])[0])

    def many(self, archs: Sequence[Architecture | str | Sequence[str]]) -> list[float]:
        """Accuracies of ``archs`` in one vectorised call, the cache filled with them."""
        archs = [as_architecture(a) for a in archs]
        missing = [a for a in dict.fromkeys(archs) if str(a) not in self.cache]
        if missing:
            for arch, value in zip(missing, self.predictor.predict(missing)):
                self.cache[str(arch)] = float(value)
            self.evaluations += len(missing)
        return [self.cache[str(a)] for a in archs]

    def describe(self) -> dict:
        p = self.predictor
        return {"kind": "predictor", "path": str(p.path.resolve()) if p.path else None, "digest": p.digest(),
                "target": p.target, "fitted_on": {k: v for k, v in p.fitted_on.items() if k != "scores"}}

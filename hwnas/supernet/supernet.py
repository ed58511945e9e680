"""The SuperNet: every candidate op of every layer of a search space in one module.

Two forwards: single path (only the chosen op of each layer runs; uniform and fairness training, and
evaluation of a sampled architecture) and weighted (each layer returns the sum of its ops' outputs
weighted by caller-supplied per-layer weights, e.g. softmax or gumbel-softmax of architecture
parameters in differentiable search). `subnet(arch)` extracts a standalone network that carries the
supernet's weights.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch
from torch import nn

from hwnas.errors import ArchitectureError
from hwnas.supernet.ops import init_weights
from hwnas.supernet.space import Architecture, Layer, SearchSpace, as_architecture


class LayerChoice(nn.Module):
    """The candidate ops of one searchable layer, by op name."""

    def __init__(self, layer: Layer):
        super().__init__()
        self.op_names = layer.op_names
        self.ops = nn.ModuleDict({name: layer.block(name).build() for name in self.op_names})

    def forward(self, x: torch.Tensor, op: str | None = None, weights: torch.Tensor | None = None,
                skip_zeros: bool = False) -> torch.Tensor:
        if op is not None:
            return self.ops[op](x)
        assert weights is not None
        # An op whose weight is zero adds nothing to the output; it must still run when its weight needs a
        # gradient, unless the caller accepts the GDAS approximation that treats that gradient as zero.
        values = weights.detach().tolist()
        outputs = [w * self.ops[name](x) for name, w, v in zip(self.op_names, weights, values)
                   if v != 0 or (w.requires_grad and not skip_zeros)]
        return torch.stack(outputs).sum(0)


class SuperNet(nn.Module):
    def __init__(self, space: SearchSpace):
        super().__init__()
        self.space = space
        self.stem = nn.Sequential(*(f.block.build() for f in space.stem))
        self.layers = nn.ModuleList(LayerChoice(layer) for layer in space.layers)
        self.head = nn.Sequential(*(f.block.build() for f in space.head))
        init_weights(self)

    def forward(self, x: torch.Tensor, arch: Architecture | str | Sequence[str] | None = None,
                weights: Sequence[torch.Tensor] | None = None, skip_zeros: bool = False) -> torch.Tensor:
        """Single path with ``arch``, or weighted sum with ``weights`` (one 1-D tensor per layer).

        ``skip_zeros`` does not run ops whose weight is zero even when that weight needs a gradient: with
        hard (straight-through) gumbel samples only the sampled op runs, as in GDAS.
        """
        if (arch is None) == (weights is None):
            raise ArchitectureError("SuperNet.forward needs exactly one of arch= or weights=, but got "
                                    f"arch={'set' if arch is not None else None}, "
                                    f"weights={'set' if weights is not None else None}")
        x = self.stem(x)
        if arch is not None:
            arch = self.space.validate(as_architecture(arch))
            for layer, op in zip(self.layers, arch.ops):
                x = layer(x, op=op)
        else:
            weights = list(weights)
            if len(weights) != len(self.layers):
                raise ArchitectureError(f"weights must hold one tensor per layer ({len(self.layers)}), "
                                        f"but got {len(weights)}")
            for i, (layer, w) in enumerate(zip(self.layers, weights)):
                if w.shape != (len(layer.op_names),):
                    raise ArchitectureError(f"weights of layer {i + 1} must have shape ({len(layer.op_names)},), "
                                            f"but got {tuple(w.shape)}")
                x = layer(x, weights=w, skip_zeros=skip_zeros)
        return self.head(x)

    def path_modules(self, arch: Architecture | str | Sequence[str]) -> list[nn.Module]:
        """The modules (shared, not copied) that run for ``arch``, in order."""
        arch = self.space.validate(as_architecture(arch))
        return [*self.stem, *(layer.ops[op] for layer, op in zip(self.layers, arch.ops)), *self.head]

    def subnet(self, arch: Architecture | str | Sequence[str]) -> nn.Sequential:
        """A standalone network for ``arch`` with (copies of) the supernet's weights and BN statistics.

        Same layout as `SearchSpace.build(arch)`, so its state_dict loads into a freshly built network.
        """
        return nn.Sequential(*(copy.deepcopy(m) for m in self.path_modules(arch)))

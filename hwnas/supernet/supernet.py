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
from dataclasses import dataclass

import torch
from torch import nn
from torch.func import functional_call

from hwnas.errors import ArchitectureError
from hwnas.space.ops import MBConv, init_weights
from hwnas.space import Architecture, Layer, SearchSpace, as_architecture


#: How the candidate ops of one layer hold their weights (`SuperNet`'s ``weight_sharing``).
WEIGHT_SHARING = ("entangled", "independent")


@dataclass(frozen=True)
class _Slice:
    """Where one conv weight of an entangled op lies in its layer's shared tensor."""

    shared: str  # key in LayerChoice.shared
    channels: int  # leading output channels (dim 0), or input channels (dim 1) for projections
    dim: int
    kernel: int | None = None  # centre k x k of the shared kernel (depthwise convs)

    def take(self, weight: torch.Tensor) -> torch.Tensor:
        w = weight[:self.channels] if self.dim == 0 else weight[:, :self.channels]
        if self.kernel is not None and self.kernel != w.shape[-1]:
            lo = (w.shape[-1] - self.kernel) // 2
            w = w[..., lo:lo + self.kernel, lo:lo + self.kernel]
        return w


class LayerChoice(nn.Module):
    """The candidate ops of one searchable layer, by op name.

    With ``weight_sharing="entangled"`` the MBConv ops of a layer that share a group count take their
    conv weights from one set of shared tensors, as the superkernel of Single-Path NAS and the elastic
    kernels of Once-for-All do: a k3 depthwise kernel is the centre of the k5 one, expansion 3 uses the
    first half of expansion 6's channels, and an op without an expansion conv uses the first input-width
    channels of the depthwise and projection weights. Each op keeps its own BN. The standalone networks
    are unchanged (`SearchSpace.build`); only the supernet's parametrisation is. Entangled ops agree with
    each other from the start, which makes a single-path supernet trainable at all on small budgets: with
    independent weights every randomly sampled op of a stride or width change (a layer without a residual)
    computes unrelated features, and a 22-layer fbnet supernet stayed near chance for thousands of steps.
    Other families (skip, shuffle, xception) always hold their own weights.
    """

    def __init__(self, layer: Layer, weight_sharing: str = "entangled"):
        super().__init__()
        if weight_sharing not in WEIGHT_SHARING:
            raise ArchitectureError(f"weight sharing must be one of {', '.join(WEIGHT_SHARING)}, "
                                    f"but got {weight_sharing!r}")
        self.layer = layer
        self.op_names = layer.op_names
        self.ops = nn.ModuleDict({name: layer.block(name).build() for name in self.op_names})
        self.shared = nn.ParameterDict()
        self.slices: dict[str, dict[str, _Slice]] = {}
        if weight_sharing == "entangled":
            self._entangle()

    def _entangle(self) -> None:
        groups: dict[int, list[str]] = {}
        for name, op in self.ops.items():
            if isinstance(op, MBConv):
                groups.setdefault(op.groups, []).append(name)
        for g, names in groups.items():
            if len(names) < 2:
                continue
            ops = [self.ops[n] for n in names]
            mids = [op.depthwise[0].out_channels for op in ops]
            mid, k = max(mids), max(op.depthwise[0].kernel_size[0] for op in ops)
            if len({op.depthwise[0].kernel_size[0] % 2 for op in ops}) > 1:
                continue  # even and odd kernels have no common centre
            first = ops[0]
            cout = first.project[0].out_channels
            cin = first.depthwise[0].in_channels if first.expand is None else first.expand[0].in_channels
            shapes = {f"g{g}_depthwise": (mid, 1, k, k), f"g{g}_project": (cout, mid // g, 1, 1)}
            if any(op.expand is not None for op in ops):
                shapes[f"g{g}_expand"] = (mid, cin // g, 1, 1)
            for key, shape in shapes.items():
                self.shared[key] = nn.Parameter(torch.empty(shape))
                nn.init.kaiming_normal_(self.shared[key], mode="fan_out")
            for name, op, m in zip(names, ops, mids):
                slices = {"depthwise.0.weight": _Slice(f"g{g}_depthwise", m, 0, op.depthwise[0].kernel_size[0]),
                          "project.0.weight": _Slice(f"g{g}_project", m // g, 1)}
                if op.expand is not None:
                    slices["expand.0.weight"] = _Slice(f"g{g}_expand", m, 0)
                for path in slices:
                    conv = op.get_submodule(path.rsplit(".", 1)[0])
                    del conv._parameters["weight"]
                    conv.weight = None
                self.slices[name] = slices

    def op_weights(self, name: str) -> dict[str, torch.Tensor]:
        """The conv weights an entangled op takes from the shared tensors (views; empty for other ops)."""
        return {path: sl.take(self.shared[sl.shared]) for path, sl in self.slices.get(name, {}).items()}

    def run(self, name: str, x: torch.Tensor) -> torch.Tensor:
        if name not in self.slices:
            return self.ops[name](x)
        return functional_call(self.ops[name], self.op_weights(name), (x,))

    def standalone(self, name: str) -> nn.Module:
        """A copy of op ``name`` as the standalone network builds it, with this layer's weights and BN."""
        if name not in self.slices:
            return copy.deepcopy(self.ops[name])
        state = {**self.ops[name].state_dict(),
                 **{path: w.detach().clone() for path, w in self.op_weights(name).items()}}
        reference = self.shared[next(iter(self.slices[name].values())).shared]
        module = self.layer.block(name).build().to(device=reference.device, dtype=reference.dtype)
        module.load_state_dict(state)
        return module

    def weight_groups(self) -> list[list[str]]:
        """The ops of this layer that share their conv weights *and* have the same convs, group by group
        (largest first; fbnet: expansion 3 and 6, then expansion 1, which has no expansion conv); every op that
        holds weights of its own is a group of one."""
        groups: dict[tuple, list[str]] = {}
        for name in self.op_names:
            slices = self.slices.get(name)
            key = ((next(iter(slices.values())).shared.split("_")[0], tuple(sorted(slices)))
                   if slices else ("own", name))
            groups.setdefault(key, []).append(name)
        return sorted(groups.values(), key=len, reverse=True)

    def alignment(self, x: torch.Tensor, op: str, out: torch.Tensor, anchor: str,
                  others: Sequence[str]) -> torch.Tensor:
        """Summed mean squared error between each op of ``others`` and ``anchor`` on this layer's input ``x``
        (detached: the loss trains only those ops' weights and BN towards the anchor's output, itself detached;
        ``out``, the output of ``op`` on ``x``, is reused when ``op`` is the anchor)."""
        x = x.detach()
        if op == anchor:
            target = out.detach()
        else:
            with torch.no_grad():
                target = self.run(anchor, x)
        losses = [nn.functional.mse_loss(self.run(name, x), target) for name in others if name != anchor]
        return torch.stack(losses).sum() if losses else out.new_zeros(())

    def forward(self, x: torch.Tensor, op: str | None = None, weights: torch.Tensor | None = None,
                skip_zeros: bool = False) -> torch.Tensor:
        if op is not None:
            return self.run(op, x)
        assert weights is not None
        # An op whose weight is zero adds nothing to the output; it must still run when its weight needs a
        # gradient, unless the caller accepts the GDAS approximation that treats that gradient as zero.
        values = weights.detach().tolist()
        outputs = [w * self.run(name, x) for name, w, v in zip(self.op_names, weights, values)
                   if v != 0 or (w.requires_grad and not skip_zeros)]
        return torch.stack(outputs).sum(0)


class SuperNet(nn.Module):
    """Stem, one `LayerChoice` per searchable layer, head. ``weight_sharing`` (``entangled``, the default,
    or ``independent``) says how the ops of a layer hold their weights; see `LayerChoice`."""

    def __init__(self, space: SearchSpace, weight_sharing: str = "entangled"):
        super().__init__()
        self.space = space
        self.weight_sharing = weight_sharing
        self.stem = nn.Sequential(*(f.block.build() for f in space.stem))
        self.layers = nn.ModuleList(LayerChoice(layer, weight_sharing) for layer in space.layers)
        self.head = nn.Sequential(*(f.block.build() for f in space.head))
        init_weights(self)

    def forward(self, x: torch.Tensor, arch: Architecture | str | Sequence[str] | None = None,
                weights: Sequence[torch.Tensor] | None = None, skip_zeros: bool = False,
                align: Sequence[tuple[int, str, Sequence[str]]] | None = None):
        """Single path with ``arch``, or weighted sum with ``weights`` (one 1-D tensor per layer).

        ``skip_zeros`` does not run ops whose weight is zero even when that weight needs a gradient: with
        hard (straight-through) gumbel samples only the sampled op runs, as in GDAS. ``align`` (single path
        only): (layer index, anchor op, other ops) triples; the forward then returns the logits and the sum
        of `LayerChoice.alignment` over those layers, on the inputs the path gives them.
        """
        if align is not None:
            if arch is None:
                raise ArchitectureError("SuperNet.forward aligns ops only on a single path (arch=)")
            arch = self.space.validate(as_architecture(arch))
            targets = {i: (anchor, others) for i, anchor, others in align}
            x = self.stem(x)
            loss = x.new_zeros(())
            for i, (layer, op) in enumerate(zip(self.layers, arch.ops)):
                out = layer(x, op=op)
                if i in targets:
                    loss = loss + layer.alignment(x, op, out, *targets[i])
                x = out
            return self.head(x), loss
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

    def subnet(self, arch: Architecture | str | Sequence[str]) -> nn.Sequential:
        """A standalone network for ``arch`` with (copies of) the supernet's weights and BN statistics.

        Same layout as `SearchSpace.build(arch)`, so its state_dict loads into a freshly built network.
        """
        arch = self.space.validate(as_architecture(arch))
        net = nn.Sequential(*(copy.deepcopy(m) for m in self.stem),
                            *(layer.standalone(op) for layer, op in zip(self.layers, arch.ops)),
                            *(copy.deepcopy(m) for m in self.head))
        stem_weight = next(p for p in self.stem.parameters() if p.dim() == 4)
        if not stem_weight.is_contiguous() and stem_weight.is_contiguous(memory_format=torch.channels_last):
            net = net.to(memory_format=torch.channels_last)
        return net

"""Differentiable search: supernet weights and architecture parameters trained jointly under a
hardware-constraint loss from the lookup table (FBNet / ProxylessNAS style, as the seed describes it).

Each step first updates the supernet's weights on a training batch (architecture parameters fixed),
then the architecture parameters α on a batch of the validation split (weights fixed), with

    loss = CE + hardware_loss(E[latency]),  E[latency] = table.expected(softmax(α))

where ``squared`` is the seed's ``w * (E[lat] - target)^2`` (the difference in percent of the target) and ``proxyless`` is ProxylessNAS's
``CE * (log E[lat] / log target)^beta``, E taken under softmax(α / T). The forward pass weights every op of a layer by softmax(α / T)
(``softmax``), by a gumbel-softmax sample at temperature T (``gumbel``), or by a hard gumbel sample with a
straight-through gradient (``gumbel-hard``, GDAS: only the sampled op runs, so a step costs one path
instead of all of them, which is what makes the search practical on a CPU); T is annealed every epoch.
The result is the argmax of α in every layer, moved greedily to faster ops if it violates the constraint,
and recorded with its accuracy from the evaluator (BN recalibrated).
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from itertools import cycle, islice

import numpy as np
import torch
import torch.nn.functional as F

from hwnas.errors import ConfigError
from hwnas.search.base import SearchContext, SearchStrategy, check_ints, register_strategy
from hwnas.search.constraints import format_ms

SAMPLINGS = ("gumbel-hard", "gumbel", "softmax")
HW_LOSSES = ("squared", "proxyless")


@register_strategy("differentiable")
@dataclass(frozen=True, kw_only=True)
class DifferentiableSearch(SearchStrategy):
    """Joint training of supernet weights and architecture parameters (needs training data, not an evaluator).

    Attributes:
        epochs: epochs of joint training (after ``warmup_epochs`` of weights only).
        warmup_epochs: epochs training only the weights, with uniformly sampled single paths, before α
            starts to move (so that α does not lock onto ops that merely train fastest).
        steps_per_epoch: batches per epoch (0: the whole training split).
        sampling: ``gumbel-hard`` (one sampled op per layer runs; straight-through gradient), ``gumbel``
            (soft gumbel-softmax weights, every op runs) or ``softmax`` (softmax weights, every op runs).
        temperature, final_temperature: T of the first and last joint epoch, annealed geometrically in
            between (FBNet: 5.0 with a factor 0.956 a epoch over 90 epochs, ending near 0.09).
        hw_loss: ``squared`` (seed) or ``proxyless`` (ProxylessNAS).
        hc_weight: w of the squared loss (the seed's 0.005, on the miss in percent of the target);
        beta: exponent of the proxyless loss (ProxylessNAS: 0.6).
        arch_lr, arch_momentum, arch_weight_decay: SGD on α, the seed's defaults.
        lr, momentum, weight_decay: SGD on the supernet's weights (cosine schedule over all epochs).
    """

    epochs: int = 10
    warmup_epochs: int = 2
    steps_per_epoch: int = 0
    sampling: str = "gumbel-hard"
    temperature: float = 5.0
    final_temperature: float = 0.1
    hw_loss: str = "squared"
    hc_weight: float = 0.005
    beta: float = 0.6
    arch_lr: float = 0.05
    arch_momentum: float = 0.9
    arch_weight_decay: float = 4e-4
    lr: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 4e-5

    needs_evaluator = False

    def __post_init__(self) -> None:
        check_ints(self, epochs=1, warmup_epochs=0, steps_per_epoch=0)
        if self.sampling not in SAMPLINGS:
            raise ConfigError(f"sampling must be one of {', '.join(SAMPLINGS)}, but got sampling={self.sampling!r}")
        if self.hw_loss not in HW_LOSSES:
            raise ConfigError(f"hw_loss must be one of {', '.join(HW_LOSSES)}, but got hw_loss={self.hw_loss!r}")
        for name in ("temperature", "final_temperature", "arch_lr", "lr"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"{name} must be > 0, but got {name}={getattr(self, name)}")
        for name in ("hc_weight", "beta", "arch_weight_decay", "weight_decay", "momentum", "arch_momentum"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} must be >= 0, but got {name}={getattr(self, name)}")

    # ----- losses ---------------------------------------------------------------------------------------
    def hardware_loss(self, ce: torch.Tensor, expected_ms: torch.Tensor, target_ms: float) -> torch.Tensor:
        if self.hw_loss == "squared":
            # the seed's w * (E - T)^2, with the miss in percent of the target: unit-free, so that one weight
            # works for a phone's tens of milliseconds and a GPU's tenths (a 10 % miss costs 0.5 at w=0.005)
            return self.hc_weight * (100 * (expected_ms - target_ms) / target_ms) ** 2
        # CE * (log E / log T)^beta - CE: only the factor's excess over 1 is the hardware term
        return ce * ((torch.log(expected_ms) / math.log(target_ms)) ** self.beta - 1)

    def _weights(self, alphas: list[torch.Tensor], temperature: float, generator: torch.Generator):
        if self.sampling == "softmax":
            return [F.softmax(a / temperature, dim=0) for a in alphas]
        samples = []
        for a in alphas:
            uniform = torch.rand(a.shape, generator=generator).clamp_(1e-9, 1 - 1e-9)
            soft = F.softmax((a - torch.log(-torch.log(uniform))) / temperature, dim=0)
            if self.sampling == "gumbel-hard":
                hard = F.one_hot(soft.argmax(), len(soft)).to(soft.dtype)
                soft = hard - soft.detach() + soft
            samples.append(soft)
        return samples

    # ----- search ---------------------------------------------------------------------------------------
    def run(self, context: SearchContext) -> None:
        if context.supernet is None or context.data is None:
            raise ConfigError("differentiable search trains a supernet and needs one and its data "
                              "(--dataset; --supernet RUN_DIR warm-starts it)")
        # each search trains its own copy, so the targets of a sweep start from the same weights
        net, data = copy.deepcopy(context.supernet), context.data
        space, table = context.space, context.constraint.table
        target = context.constraint.target_ms
        device = next(net.parameters()).device
        torch.manual_seed(context.rng.getrandbits(63))  # data augmentation and dropout draw from torch's RNG
        generator = torch.Generator().manual_seed(context.rng.getrandbits(63))
        alphas = [torch.zeros(n, requires_grad=True) for n in space.num_ops]
        arch_opt = torch.optim.SGD(alphas, lr=self.arch_lr, momentum=self.arch_momentum,
                                   weight_decay=self.arch_weight_decay)
        total_epochs = self.warmup_epochs + self.epochs
        steps = self.steps_per_epoch or len(data.train)
        opt = torch.optim.SGD(net.parameters(), lr=self.lr, momentum=self.momentum, weight_decay=self.weight_decay,
                              nesterov=self.momentum > 0)
        schedule = torch.optim.lr_scheduler.CosineAnnealingLR(opt, total_epochs * steps)
        val_batches = cycle(data.val)
        context.begin(total_epochs)
        temperature = self.temperature
        decay = (self.final_temperature / self.temperature) ** (1 / max(1, self.epochs - 1))
        for epoch in range(total_epochs):
            joint = epoch >= self.warmup_epochs
            net.train()
            for x, y in islice(cycle(data.train), steps):
                x, y = x.to(device), y.to(device)
                if joint:
                    weights = [w.detach().to(device) for w in self._weights(alphas, temperature, generator)]
                    logits = net(x, weights=weights, skip_zeros=True)
                else:
                    choice = [int(torch.randint(n, (1,), generator=generator)) for n in space.num_ops]
                    logits = net(x, space.from_indices(choice))
                opt.zero_grad(set_to_none=True)
                F.cross_entropy(logits, y).backward()
                opt.step()
                schedule.step()
                if joint:
                    vx, vy = (t.to(device) for t in next(val_batches))
                    weights = self._weights(alphas, temperature, generator)
                    ce = F.cross_entropy(net(vx, weights=[w.to(device) for w in weights], skip_zeros=True), vy)
                    # the expectation sharpens with T, so that towards the end it is the argmax's latency
                    # that the loss pulls to the target, not that of a flat mixture
                    expected = table.expected([F.softmax(a / temperature, dim=0).double() for a in alphas]).float()
                    loss = ce + self.hardware_loss(ce, expected, target)
                    arch_opt.zero_grad(set_to_none=True)
                    net.zero_grad(set_to_none=True)
                    loss.backward()
                    arch_opt.step()
            if joint:
                temperature *= decay
            context.generation = epoch
            context.step(epoch + 1, total_epochs)

        with torch.no_grad():
            expected = float(table.expected([F.softmax(a / temperature, dim=0).double() for a in alphas]))
        log_probs = [F.log_softmax(a.detach(), dim=0) for a in alphas]
        indices = [int(p.argmax()) for p in log_probs]
        argmax_ms = float(context.constraint.costs_indices(np.array([indices]))[0, 0])
        indices, swaps = project_to_feasible(context, indices, log_probs)
        arch = space.from_indices(indices)
        # an evaluator given to the search scores as it scores every other strategy's candidates; without
        # one, the weights trained here score the result
        accuracy = context.evaluator(arch) if context.evaluator is not None else validation_accuracy(net, arch, data)
        candidate = context.record(arch, accuracy, "argmax" if not swaps else "argmax+projection")
        context.notes.append(
            f"differentiable search ended at E[latency] {expected:.4g} ms; the argmax architecture runs "
            f"{argmax_ms:.4g} ms on {table.device_name} (target {format_ms(target)})"
            + (f"; {swaps} layer(s) were moved to faster ops to meet the constraint, giving "
               f"{candidate.latency_ms[0]:.4g} ms" if swaps else ""))


def project_to_feasible(context: SearchContext, indices: list[int],
                        log_probs: list[torch.Tensor]) -> tuple[list[int], int]:
    """Greedily move layers to faster ops until the architecture meets the constraint.

    Each move is the one that loses the least log-probability per millisecond saved, so the result stays
    as close to what α learned as the constraint allows. Returns the indices and the number of moves.
    """
    constraint = context.constraint
    indices, moves = list(indices), 0
    while not constraint.feasible_indices(np.array([indices]))[0]:
        base = constraint.costs_indices(np.array([indices]))[0, 0]
        best = None
        for layer, lp in enumerate(log_probs):
            for op in range(len(lp)):
                trial = indices.copy()
                trial[layer] = op
                saved = base - constraint.costs_indices(np.array([trial]))[0, 0]
                if saved <= 0:
                    continue
                cost = float(lp[indices[layer]] - lp[op]) / saved
                if best is None or cost < best[0]:
                    best = (cost, layer, op)
        if best is None:
            raise ConfigError(context.infeasible_message(0))
        indices[best[1]] = best[2]
        moves += 1
    return indices, moves


def validation_accuracy(net, arch, data, bn_batches: int = 10) -> float:
    """Validation accuracy (%) of ``arch`` with the weights trained here, BN recalibrated on training batches
    (the statistics gathered under mixed op weights do not describe a single path)."""
    from hwnas.supernet.evaluate import calibration_batches, subnet_accuracy

    calibration = calibration_batches(data.train, bn_batches)
    return 100.0 * subnet_accuracy(net, arch, data.val, calibration=calibration)

"""The ``differentiable`` training strategy: supernet weights and architecture parameters α trained jointly
under a hardware-constraint loss from a lookup table (FBNet / ProxylessNAS style, as the seed describes it).

Each step first updates the supernet's weights on a training batch (α fixed), then α on a batch of the
validation split (weights fixed), with

    loss = CE + hardware_loss(E[latency]),  E[latency] = table.expected(softmax(α / T))

where ``squared`` is the seed's ``w * (E[lat] - target)^2`` (the miss in percent of the target) and
``proxyless`` is ProxylessNAS's ``CE * (log E[lat] / log target)^beta``. The forward pass weights every op
of a layer by softmax(α / T) (``softmax``), by a gumbel-softmax sample at temperature T (``gumbel``), or by
a hard gumbel sample with a straight-through gradient (``gumbel-hard``, GDAS: only the sampled op runs, so
a step costs one path instead of all of them, which is what makes the search practical on a CPU). The
first ``warmup_epochs`` train the weights alone on uniformly sampled paths; T is annealed geometrically
from ``temperature`` to ``final_temperature`` over the joint epochs.

α and its optimizer's state are the strategy's state, so they are in every checkpoint and a killed run
resumes where it stopped. Every random draw of a step (the path, the gumbel noise) comes from (seed,
step), and the validation batch of step s is a fixed function of s, so every rank of a torchrun job
takes the same α step without communicating, and a resumed run repeats the interrupted one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import default_collate

from hwnas.errors import CheckpointError, ConfigError, require, require_finite
from hwnas.space import SearchSpace
from hwnas.supernet.evaluate import subnet_accuracy
from hwnas.tables import LookupTable
from hwnas.training.sampling import uniform_path
from hwnas.training.strategies import StepResult, Strategy, register

if TYPE_CHECKING:
    from hwnas.data import Loaders
    from hwnas.training.config import RunConfig

SAMPLINGS = ("gumbel-hard", "gumbel", "softmax")
HW_LOSSES = ("squared", "proxyless")
#: the strategy settings that say what the search is for, besides `ArchitectureSettings`
TARGET_SETTINGS = ("table", "table_digest", "target_ms")


@dataclass(frozen=True, kw_only=True)
class ArchitectureSettings:
    """How α is trained.

    Attributes:
        warmup_epochs: epochs training only the weights, with uniformly sampled single paths, before α
            starts to move (so that α does not lock onto ops that merely train fastest).
        sampling: ``gumbel-hard`` (one sampled op per layer runs; straight-through gradient), ``gumbel``
            (soft gumbel-softmax weights, every op runs) or ``softmax`` (softmax weights, every op runs).
        temperature, final_temperature: T of the first and last joint epoch, annealed geometrically in
            between (FBNet: 5.0 with a factor 0.956 a epoch over 90 epochs, ending near 0.09).
        hw_loss: ``squared`` (seed) or ``proxyless`` (ProxylessNAS).
        hc_weight: w of the squared loss (the seed's 0.005, on the miss in percent of the target).
        beta: exponent of the proxyless loss (ProxylessNAS: 0.6).
        arch_lr, arch_momentum, arch_weight_decay: SGD on α, the seed's defaults.
    """

    warmup_epochs: int = 2
    sampling: str = "gumbel-hard"
    temperature: float = 5.0
    final_temperature: float = 0.1
    hw_loss: str = "squared"
    hc_weight: float = 0.005
    beta: float = 0.6
    arch_lr: float = 0.05
    arch_momentum: float = 0.9
    arch_weight_decay: float = 4e-4

    def __post_init__(self) -> None:
        require_finite(self)
        if not isinstance(self.warmup_epochs, int) or isinstance(self.warmup_epochs, bool) or self.warmup_epochs < 0:
            raise ConfigError(f"warmup_epochs must be an integer >= 0, but got warmup_epochs={self.warmup_epochs!r}")
        if self.sampling not in SAMPLINGS:
            raise ConfigError(f"sampling must be one of {', '.join(SAMPLINGS)}, but got sampling={self.sampling!r}")
        if self.hw_loss not in HW_LOSSES:
            raise ConfigError(f"hw_loss must be one of {', '.join(HW_LOSSES)}, but got hw_loss={self.hw_loss!r}")
        for name in ("temperature", "final_temperature", "arch_lr"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"{name} must be > 0, but got {name}={getattr(self, name)}")
        for name in ("hc_weight", "beta", "arch_weight_decay", "arch_momentum"):
            if not getattr(self, name) >= 0:
                raise ConfigError(f"{name} must be >= 0, but got {name}={getattr(self, name)}")

    def architecture_settings(self) -> dict[str, Any]:
        """These settings alone (a subclass may add others), as `RunConfig.strategy_settings` take them."""
        return {f.name: getattr(self, f.name) for f in fields(ArchitectureSettings)}

    # ----- losses and weights: pure functions of the settings -------------------------------------------
    def hardware_loss(self, ce: torch.Tensor, expected_ms: torch.Tensor, target_ms: float) -> torch.Tensor:
        if self.hw_loss == "squared":
            # the seed's w * (E - T)^2, with the miss in percent of the target: unit-free, so that one weight
            # works for a phone's tens of milliseconds and a GPU's tenths (a 10 % miss costs 0.5 at w=0.005)
            return self.hc_weight * (100 * (expected_ms - target_ms) / target_ms) ** 2
        # CE * (log E / log T)^beta - CE: only the factor's excess over 1 is the hardware term
        return ce * ((torch.log(expected_ms) / math.log(target_ms)) ** self.beta - 1)

    def sample_weights(self, alphas: list[torch.Tensor], temperature: float,
                       generator: torch.Generator) -> list[torch.Tensor]:
        """Per-layer op weights of a forward pass (see ``sampling``); gradients flow to ``alphas``."""
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

    def temperature_at(self, epoch: int, epochs: int) -> float:
        """T of (0-based) ``epoch`` of a run of ``epochs``: ``temperature`` through the warm-up and the first
        joint epoch, then annealed geometrically to ``final_temperature`` at the last."""
        joint = epochs - self.warmup_epochs
        decay = (self.final_temperature / self.temperature) ** (1 / max(1, joint - 1))
        return self.temperature * decay ** max(0, epoch - self.warmup_epochs)


@dataclass(frozen=True, kw_only=True)
class DifferentiableSettings(ArchitectureSettings):
    """The settings of a differentiable run: what it searches for (the lookup table file, its digest, which
    must not change while the run lasts, and the target latency) and how α is trained."""

    table: str
    table_digest: str
    target_ms: float

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.target_ms > 0:
            raise ConfigError(f"a target latency must be > 0, but got target_ms={self.target_ms}")


def target_settings(table: LookupTable, target_ms: float, settings: ArchitectureSettings) -> dict[str, Any]:
    """`RunConfig.strategy_settings` of a differentiable run for ``target_ms`` on ``table`` (a file)."""
    require(table.path is not None, "a differentiable run needs its lookup table as a file, but got an in-memory table")
    return {"table": str(table.path.resolve()), "table_digest": table.digest(), "target_ms": float(target_ms),
            **settings.architecture_settings()}


@register("differentiable")
class DifferentiableTraining(Strategy):
    """Joint training of supernet weights and architecture parameters α (see the module docstring)."""

    Settings = DifferentiableSettings
    metric_names = ("expected_latency_ms", "argmax_latency_ms", "temperature")
    #: the task loss of α's step, on a validation batch (the hardware loss is added to it)
    validation_loss = staticmethod(F.cross_entropy)

    def __init__(self, space: SearchSpace, config: RunConfig, loaders: Loaders):
        super().__init__(space, config, loaders)
        self.validation_archs = []  # the current argmax is what is validated
        self.table = _load_table(self.settings)
        self.table.check_built_for(space)
        self.target_ms = float(self.settings.target_ms)
        self.epochs = config.epochs
        self.alphas = [torch.zeros(n, requires_grad=True) for n in space.num_ops]
        s = self.settings
        self.arch_optimizer = torch.optim.SGD(self.alphas, lr=s.arch_lr, momentum=s.arch_momentum,
                                              weight_decay=s.arch_weight_decay)
        self.val_set = loaders.val.dataset
        self.val_batch = loaders.val.batch_size or 1
        self.temperature, self.joint = s.temperature, False

    @classmethod
    def settings_of(cls, settings: dict[str, Any]) -> DifferentiableSettings:
        missing = [k for k in TARGET_SETTINGS if k not in settings]
        require(not missing, f"training strategy 'differentiable' needs a lookup table and a target latency "
                f"(settings {', '.join(missing)} are missing); run it with `hwnas search --strategy differentiable`")
        return super().settings_of(settings)

    @classmethod
    def check_settings(cls, settings: dict[str, Any]) -> None:
        _load_table(cls.settings_of(settings))

    @property
    def needs_calibration(self) -> bool:
        return True

    def begin_epoch(self, epoch: int) -> None:
        self.joint = epoch >= self.settings.warmup_epochs
        self.temperature = self.settings.temperature_at(epoch, self.epochs)

    def step(self, model, images, labels, *, criterion, optimizer, step):
        rng = self.path_rng(step)
        generator = torch.Generator().manual_seed(rng.getrandbits(63))
        device = images.device
        if self.joint:
            weights = [w.detach().to(device) for w in self.settings.sample_weights(self.alphas, self.temperature,
                                                                                  generator)]
            logits = model(images, weights=weights, skip_zeros=True)
        else:
            logits = model(images, self.space.from_indices(uniform_path(self.space.num_ops, rng)))
        optimizer.zero_grad(set_to_none=True)
        loss = criterion(logits, labels)
        loss.backward()
        optimizer.step()
        if self.joint:
            self._alpha_step(model.module if isinstance(model, DistributedDataParallel) else model, step,
                             generator, device)
        n = len(labels)
        return StepResult(loss.detach() * n, (logits.detach().argmax(1) == labels).sum(), n)

    def _alpha_step(self, net, step: int, generator: torch.Generator, device: torch.device) -> None:
        """One SGD step of α on the validation batch of ``step``; the weights get no gradient."""
        images, labels = self._validation_batch(step)
        images, labels = images.to(device), labels.to(device)
        weights = self.settings.sample_weights(self.alphas, self.temperature, generator)
        ce = self.validation_loss(net(images, weights=[w.to(device) for w in weights], skip_zeros=True), labels)
        loss = ce + self.settings.hardware_loss(ce, self.expected_ms().to(device), self.target_ms)
        grads = torch.autograd.grad(loss, self.alphas, allow_unused=True)
        self.arch_optimizer.zero_grad(set_to_none=True)
        for alpha, grad in zip(self.alphas, grads):
            alpha.grad = torch.zeros_like(alpha) if grad is None else grad
        self.arch_optimizer.step()

    def _validation_batch(self, step: int):
        """The validation batch of ``step``: consecutive samples from position step x batch, wrapping round."""
        n = len(self.val_set)
        start = step * self.val_batch
        return default_collate([self.val_set[(start + j) % n] for j in range(min(self.val_batch, n))])

    def expected_ms(self) -> torch.Tensor:
        """E[latency] under softmax(α / T): the expectation sharpens with T, so that towards the end it is the
        argmax's latency that the loss pulls to the target, not that of a flat mixture."""
        return self.table.expected([F.softmax(a / self.temperature, dim=0).double() for a in self.alphas]).float()

    def argmax(self) -> list[int]:
        return [int(a.detach().argmax()) for a in self.alphas]

    def log_probs(self) -> list[torch.Tensor]:
        return [F.log_softmax(a.detach(), dim=0) for a in self.alphas]

    def validate(self, model, val_loader, calibration):
        return subnet_accuracy(model, self.space.from_indices(self.argmax()), val_loader, calibration=calibration)

    def metrics(self) -> dict[str, float]:
        with torch.no_grad():
            expected = float(self.expected_ms())
        argmax = float(self.table.predict_indices([self.argmax()])[0])
        return {"expected_latency_ms": expected, "argmax_latency_ms": argmax, "temperature": self.temperature}

    def state_dict(self) -> dict[str, Any]:
        return {"alphas": [a.detach().clone() for a in self.alphas], "arch_optimizer": self.arch_optimizer.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        require(set(state) == {"alphas", "arch_optimizer"} and len(state["alphas"]) == len(self.alphas),
                f"a differentiable run's checkpoint holds alphas for {len(self.alphas)} layers and their optimizer, "
                f"but got {sorted(state)}", CheckpointError)
        with torch.no_grad():
            for alpha, saved in zip(self.alphas, state["alphas"]):
                alpha.copy_(saved)
        self.arch_optimizer.load_state_dict(state["arch_optimizer"])


def _load_table(settings: DifferentiableSettings) -> LookupTable:
    table = LookupTable.load(settings.table)
    if table.digest() != settings.table_digest:
        raise ConfigError(f"the lookup table of a differentiable run must not change, but {settings.table} differs "
                          f"from the table the run started with (digest {table.digest()} != "
                          f"{settings.table_digest})")
    return table


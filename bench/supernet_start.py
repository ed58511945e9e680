"""Why a single-path fbnet supernet learns so slowly: training accuracy after N steps, path sampler by sampler.

Every variant trains from the same initialisation, data order and recipe (the `RunConfig` defaults: SGD 0.1,
momentum 0.9, cosine over ``--horizon`` steps, label smoothing 0.1) and differs only in which ops the
supernet's path takes at each step:

- ``standalone``: the reference architecture built on its own (`SearchSpace.build`), no supernet;
- ``fixed``: the supernet, always the reference's path;
- ``residual``: uniform ops in the layers with a residual, the reference's op in the layers that change
  stride or width (fbnet: 5 of 22);
- ``shape``: the reverse;
- ``e36`` and ``g1``: uniform everywhere, but the shape-changing layers draw
  from a subset of their ops (expansion 3 and 6, whose weights are entangled; or every ungrouped MBConv,
  expansion 1 included, whose depthwise conv works on the input channels rather than on expanded ones);
- ``uniform``: uniform everywhere (SPOS; `hwnas train --strategy uniform`);
- ``anchored``: `hwnas train --strategy anchored` (`hwnas.training.anchored`): the shape-changing layers draw
  only their anchors (expansion 3 / 6) for the first quarter of the steps, and their other ops learn to
  reproduce an anchor's output every step; ``aligned``: the same without the anchor phase.

Run: ``python bench/supernet_start.py [--steps 70] [--dataset fashion-mnist-subset]``. It prints the
training loss and accuracy of the last ``--window`` steps of each variant, side by side.
"""

from __future__ import annotations

import argparse
import random
import time

import torch
from torch import nn

from hwnas.data import build_loaders
from hwnas.space.ops import init_weights
from hwnas.space.references import find_reference
from hwnas.space.spaces import get_space
from hwnas.supernet.supernet import SuperNet
from hwnas.training import RunConfig


def shape_changing(layer) -> bool:
    return layer.stride != 1 or layer.cin != layer.cout


def samplers(space, reference, rng: random.Random, anchor_steps: int = 0) -> dict:
    def path(pick):
        return lambda: [pick(layer, ref) for layer, ref in zip(space.layers, reference.ops)]

    def subset(keep):
        return path(lambda l, ref: rng.choice([o for o in l.op_names if keep(o)] if shape_changing(l)
                                              else l.op_names))

    def anchored(anchor_steps):
        from hwnas.training.anchored import anchor_groups

        groups = anchor_groups(space, "entangled")
        state = {"step": 0}

        def sample():
            early = state["step"] < anchor_steps
            state["step"] += 1
            ops = [rng.choice(groups[i] if early and i in groups else l.op_names) for i, l in enumerate(space.layers)]
            align = [(i, ops[i] if ops[i] in g else rng.choice(g), [o for o in space.layers[i].op_names if o not in g])
                     for i, g in groups.items()]
            return ops, align
        return sample

    return {
        "anchored": anchored(anchor_steps),
        "aligned": anchored(0),
        "fixed": path(lambda l, ref: ref),
        "residual": path(lambda l, ref: ref if shape_changing(l) else rng.choice(l.op_names)),
        "shape": path(lambda l, ref: rng.choice(l.op_names) if shape_changing(l) else ref),
        "e36": subset(lambda o: "_e3" in o or "_e6" in o),
        "g1": subset(lambda o: "_g" not in o and o != "skip"),
        "uniform": path(lambda l, ref: rng.choice(l.op_names)),
    }


VARIANTS = {
    "standalone": "the reference alone, no supernet",
    "fixed": "supernet, the reference's path",
    "residual": "supernet, random ops in residual layers only",
    "shape": "supernet, random ops in shape-changing layers only",
    "e36": "uniform, shape-changing layers e3/e6 only",
    "g1": "uniform, shape-changing layers group-1 MBConv only",
    "uniform": "uniform (SPOS)",
    "anchored": "--strategy anchored, anchors for the first quarter",
    "aligned": "--strategy anchored without the anchor phase",
}


def train(name, space, reference, args, config) -> tuple[float, float, float]:
    torch.manual_seed(args.seed)
    rng = random.Random(args.seed)
    loaders = build_loaders(args.dataset, batch_size=config.batch_size, seed=args.seed, resolution=args.resolution)
    if name == "standalone":
        net = space.build(reference)
        init_weights(net)
        forward = net
    else:
        net = SuperNet(space)
        sample = samplers(space, reference, rng, anchor_steps=args.steps // 4)[name]

        def forward(x):
            drawn = sample()
            if isinstance(drawn, tuple):  # anchored: the path and its alignment; the loss gets the alignment
                logits, aux = net(x, arch=drawn[0], align=drawn[1])
                forward.aux = aux
                return logits
            return net(x, arch=drawn)
    opt = torch.optim.SGD(net.parameters(), lr=config.lr, momentum=config.momentum,
                          weight_decay=config.weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=args.horizon)
    criterion = nn.CrossEntropyLoss(label_smoothing=config.label_smoothing)
    net.train()
    step, seen, correct, loss_sum, start = 0, 0, 0, 0.0, time.perf_counter()
    while step < args.steps:
        for x, y in loaders.train:
            forward.aux = None
            out = forward(x)
            loss = criterion(out, y)
            opt.zero_grad(set_to_none=True)
            (loss if forward.aux is None else loss + forward.aux).backward()
            opt.step()
            sched.step()
            step += 1
            if step > args.steps - args.window:
                seen += len(y)
                correct += (out.argmax(1) == y).sum().item()
                loss_sum += loss.item() * len(y)
            if step == args.steps:
                break
    return loss_sum / seen, 100 * correct / seen, time.perf_counter() - start


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--dataset", default="fashion-mnist-subset")
    p.add_argument("--width", type=float, default=0.25)
    p.add_argument("--resolution", type=int, default=16)
    p.add_argument("--reference", default="FBNet-A")
    p.add_argument("--steps", type=int, default=70, help="training steps of each variant")
    p.add_argument("--window", type=int, default=35, help="steps at the end whose loss and accuracy are shown")
    p.add_argument("--horizon", type=int, default=700, help="steps of the cosine schedule (the demo's 700)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--variants", default=",".join(v for v in VARIANTS if v not in ("anchored", "aligned")), help=f"comma-separated, of {', '.join(VARIANTS)}")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    ref = find_reference(args.reference)
    profile = build_loaders(args.dataset, batch_size=1, resolution=args.resolution).profile
    space = get_space(ref.space, profile, width=args.width)
    reference = space.validate(ref.arch)
    config = RunConfig(space=ref.space, dataset=args.dataset)
    names = args.variants.split(",")
    unknown = [n for n in names if n not in VARIANTS]
    if unknown:
        p.error(f"--variants must name variants of {', '.join(VARIANTS)}, but got {', '.join(unknown)}")
    print(f"{ref.space} width {args.width} at {args.resolution}x{args.resolution} on {args.dataset}, batch "
          f"{config.batch_size}, lr {config.lr}: training loss / accuracy over steps "
          f"{args.steps - args.window + 1}-{args.steps} (chance: 10 %)")
    for name in names:
        loss, acc, seconds = train(name, space, reference, args, config)
        print(f"  {name:10s} {VARIANTS[name]:52s} loss {loss:.3f}  acc {acc:5.1f} %  ({seconds:.0f} s)", flush=True)


if __name__ == "__main__":
    main()

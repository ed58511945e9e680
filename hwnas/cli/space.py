"""Commands that describe search spaces: spaces, references, arch."""

from __future__ import annotations

import click

from hwnas.cli.options import WIDTH, format_option
from hwnas.cli.output import human, render


@click.command()
@click.option("--input", "profile", default="imagenet", show_default=True, help="Input profile.")
@format_option
def spaces(profile: str, fmt: str) -> None:
    """List the search spaces: layers, ops per layer and number of architectures."""
    from hwnas.space import SPACES, get_space

    rows = []
    for name in SPACES:
        space = get_space(name, profile)
        counts = sorted(set(space.num_ops))
        ops = list(dict.fromkeys(op for layer in space.layers for op in layer.op_names))
        rows.append({"space": name, "layers": len(space.layers),
                     "ops_per_layer": "/".join(map(str, counts)),
                     "architectures": f"{space.size:.3e}" if fmt == "table" else float(space.size),
                     "ops": " ".join(ops)})
    click.echo(render(rows, fmt, extra={"input": profile} if fmt == "json" else None))


@click.command()
@click.option("--space", default=None, help="Only the references of this space.")
@format_option
def references(space: str | None, fmt: str) -> None:
    """List the reference architectures with their published and counted ImageNet MACs/params."""
    from hwnas.space import REFERENCES, SPACES, reference_cost

    if space is not None:
        SPACES.get(space)  # an unknown space is an error, not an empty list

    rows = []
    for name in REFERENCES:
        ref = REFERENCES.get(name)
        if space and ref.space != space:
            continue
        cost = reference_cost(name)
        rows.append({"name": name, "space": ref.space, "published_macs": int(ref.macs) if ref.macs else None,
                     "macs": cost.macs, "published_params": int(ref.params) if ref.params else None,
                     "params": cost.params, "arch": str(ref.arch)})
    if fmt == "table":  # human units, and no architecture strings (they do not fit a terminal); json and csv keep them
        rows = [{k: human(v) if k.endswith(("macs", "params")) and v is not None else v for k, v in row.items()
                 if k != "arch"} for row in rows]
    click.echo(render(rows, fmt))


@click.command()
@click.argument("space_name", metavar="SPACE")
@click.argument("arch_text", metavar="ARCH")
@click.option("--input", "profile", default="imagenet", show_default=True, help="Input profile.")
@click.option("--width", type=WIDTH, default=1.0, show_default=True, help="Width multiplier.")
@format_option
def arch(space_name: str, arch_text: str, profile: str, width: float, fmt: str) -> None:
    """Per-block MACs and params of one architecture of SPACE.

    ARCH is a reference name (see `hwnas references`), an architecture string such as
    k3_e6-skip-k5_e3-... (one op per searchable layer), or a JSON file with an "ops" list.
    """
    from hwnas.space import arch_costs, resolve_arch

    space, architecture = resolve_arch(space_name, arch_text, profile, width=width)
    space.check_buildable()  # a width too small for an op is named as the width
    rows = []
    for name, block, cost in arch_costs(space, architecture):
        op = next((n for layer in space.layers if layer.name == name for n, o in layer.choices if o == block.op),
                  block.op.family)
        rows.append({"layer": name, "op": op, "cin": block.cin, "cout": block.cout, "stride": block.stride,
                     "input": f"{block.height}x{block.width}", "macs": cost.macs, "params": cost.params})
    total = {"macs": sum(r["macs"] for r in rows), "params": sum(r["params"] for r in rows)}
    extra = {"space": space.name, "input": space.profile.name, "width": width, "arch": str(architecture)}
    if fmt == "table":  # the totals as the last row; in json they are the summary's, csv holds the blocks only
        footer = {"layer": "total", "op": f"{human(total['macs'])} MACs, {human(total['params'])} params", **total}
        click.echo(render(rows, fmt, extra=extra, footer=[footer]))
        return
    click.echo(render(rows, fmt, extra={**extra, "total": total}))

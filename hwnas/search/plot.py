"""Drawing a `ChartData` (from `hwnas.search.pareto`) with matplotlib, on a figure of its own (no pyplot).

Per series, one colour: all candidates faint (infeasible ones as crosses), the Pareto front bold (earlier
series drawn wider underneath, so fronts that coincide stay visible), the returned architecture as a large
diamond, the target as a dashed vertical line, the measured front as hollow squares joined to the
predicted points. The legend sits below the axes, where it cannot hide a point.
Reference architectures with an accuracy are black stars with their name; those without are named ticks
on the latency axis.
"""

from __future__ import annotations

from pathlib import Path

from hwnas.files import write_atomic
from hwnas.errors import ConfigError
from hwnas.search.pareto import ChartData

FORMATS = (".png", ".svg", ".pdf")


def chart_path(path: str | Path) -> Path:
    """``path`` as a Path if its extension names a chart format, else a one-line ConfigError."""
    path = Path(path)
    if path.suffix.lower() not in FORMATS:
        raise ConfigError(f"a chart file must end in {', '.join(FORMATS)}, but got {path.name!r}")
    return path


def new_figure(size: tuple[float, float]):
    """A matplotlib figure of its own (no pyplot: no display needed, and the user's backend is left as it is)
    and the colours every hwnas chart uses."""
    import matplotlib
    from matplotlib.figure import Figure

    return Figure(figsize=size, layout="constrained"), matplotlib.colormaps["tab10"].colors


def draw_chart(data: ChartData, path: str | Path, *, dpi: int = 150, size: tuple[float, float] | None = None,
               title: str | None = None, log_x: bool = False) -> Path:
    """Write the chart to ``path``; the extension (.png, .svg or .pdf) picks the format. ``size`` is (width,
    height) in inches (default 9 wide, taller with more series), ``title`` replaces the generated one,
    ``log_x`` draws the x axis on a log scale."""
    path = chart_path(path)
    from matplotlib.transforms import blended_transform_factory

    fig, colours = new_figure(size or (9, 6.5 + 0.25 * max(0, len(data.series) - 2)))
    ax = fig.add_subplot()
    # a target shared by several series is drawn once, in grey; one series' own target in its colour
    owners: dict[float, list[int]] = {}
    for i, s in enumerate(data.series):
        if s.target_ms is not None:
            owners.setdefault(s.target_ms, []).append(i)
    n = len(data.series)
    for i, s in enumerate(data.series):
        colour = colours[i % len(colours)]
        ok = s.feasible
        ax.scatter(s.latency_ms[ok], s.accuracy[ok], s=10, color=colour, alpha=0.25, linewidths=0)
        if (~ok).any():
            ax.scatter(s.latency_ms[~ok], s.accuracy[~ok], s=14, color=colour, alpha=0.25, marker="x",
                       linewidths=0.8)
        # steps: any latency between two front points buys the accuracy of the faster one
        ax.plot(s.front.latency_ms, s.front.accuracy, "o-", color=colour, linewidth=2 + 2.5 * (n - 1 - i) / max(n - 1, 1),
                markersize=5 + 3 * (n - 1 - i) / max(n - 1, 1), drawstyle="steps-post",
                label=f"{s.label}: Pareto front ({len(s.latency_ms)} candidates)", zorder=3 + i / n)
        if s.best_ms is not None:
            ax.plot([s.best_ms], [s.best_accuracy], "D", color=colour, markersize=9 + 5 * (n - 1 - i) / max(n - 1, 1), markeredgecolor="black",
                    markeredgewidth=1, label=f"{s.label}: returned architecture", zorder=5)
        if s.measured_ms is not None:
            # each front point joined to its measurement at the same accuracy: the gap is the table's error
            for predicted, measured_ms, acc in zip(s.front.latency_ms, s.measured_ms, s.front.accuracy):
                ax.plot([predicted, measured_ms], [acc, acc], ":", color=colour, linewidth=1, alpha=0.8)
            ax.plot(s.measured_ms, s.front.accuracy, "s", color=colour, markerfacecolor="none", markersize=7,
                    markeredgewidth=1.5, label=f"{s.label}: front measured on {s.device}", zorder=3)
    for target, series in owners.items():
        alone = len(series) == 1
        ax.axvline(target, color=colours[series[0] % len(colours)] if alone else "dimgray", linestyle="--",
                   linewidth=1.2,
                   label=(f"{data.series[series[0]].label}: " if alone else "") + f"target {target:.3g} {data.x_unit}")
    ticks = blended_transform_factory(ax.transData, ax.transAxes)
    evaluated = [m for m in data.references if m.accuracy is not None]
    unevaluated = [m for m in data.references if m.accuracy is None]
    if evaluated:
        ax.scatter([m.latency_ms for m in evaluated], [m.accuracy for m in evaluated], marker="*", s=140,
                   color="black", zorder=4, label="reference architectures")
        for m in evaluated:
            ax.annotate(m.name, (m.latency_ms, m.accuracy), textcoords="offset points", xytext=(6, 4), fontsize=8)
    for m in unevaluated:
        ax.plot([m.latency_ms], [0], marker="|", markersize=18, markeredgewidth=2, color="dimgray",
                transform=ticks, clip_on=False, zorder=4)
        ax.text(m.latency_ms, 0.03, f" {m.name} (not evaluated)", transform=ticks, rotation=90, fontsize=7,
                color="dimgray", va="bottom", ha="center")
    ax.set_xlabel(data.xlabel)
    ax.set_ylabel(data.ylabel)
    ax.set_title(title if title is not None else f"accuracy vs {data.x_name}: {data.title}")
    if log_x:
        from matplotlib.ticker import FuncFormatter

        ax.set_xscale("log")
        plain = FuncFormatter(lambda value, _: f"{value:g}")  # 0.5, 2, 30: not 5x10^-1
        ax.xaxis.set_major_formatter(plain)
        ax.xaxis.set_minor_formatter(plain)
    ax.grid(True, alpha=0.3)
    ax.margins(x=0.08, y=0.08)
    fig.legend(*ax.get_legend_handles_labels(), loc="outside lower center", ncols=2 if n > 1 else 1, fontsize=8)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, lambda tmp: fig.savefig(tmp, dpi=dpi, format=path.suffix[1:]))  # a symlink is replaced
    return path

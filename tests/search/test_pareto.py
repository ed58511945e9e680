"""Pareto fronts, chart data and drawing (data and drawing are tested apart)."""

import numpy as np
import pytest

from hwnas.devices import get_device
from hwnas.timing.protocol import Protocol
from hwnas.errors import ConfigError, TableError
from hwnas.profiler.session import device_header
from hwnas.search import Evolution, RandomSearch, load_search, run_search
from hwnas.search.measure import measure_front
from hwnas.search.pareto import chart_data, pareto_front
from hwnas.search.plot import draw_chart
from hwnas.testing import SyntheticEvaluator, synthetic_table
from hwnas.space import get_space


def test_front_is_exactly_the_non_dominated_points():
    rng = np.random.default_rng(0)
    latency, accuracy = rng.random(300), rng.random(300)
    latency[:20] = latency[20:40]  # ties in latency
    accuracy[40:50] = accuracy[50:60]  # ties in accuracy
    front = pareto_front(latency, accuracy)
    dominated = [any(latency[j] <= latency[i] and accuracy[j] >= accuracy[i]
                     and (latency[j] < latency[i] or accuracy[j] > accuracy[i]) for j in range(300))
                 for i in range(300)]
    on_front = set(front.index.tolist())
    for i in range(300):
        if not dominated[i]:
            # a non-dominated point is on the front unless an identical point came first
            assert i in on_front or any(latency[j] == latency[i] and accuracy[j] == accuracy[i] for j in on_front)
        else:
            assert i not in on_front
    assert (np.diff(front.latency_ms) > 0).all() and (np.diff(front.accuracy) > 0).all()
    np.testing.assert_array_equal(front.latency_ms, latency[front.index])


def test_front_edge_cases():
    assert pareto_front([], []).index.size == 0
    front = pareto_front([1.0, np.nan, 2.0, 1.0], [5.0, 9.0, 6.0, 5.0])
    assert front.index.tolist() == [0, 2]  # NaN ignored, the repeated point kept once
    with pytest.raises(ConfigError, match="one value per point, but got shapes"):
        pareto_front([1.0, 2.0], [1.0])


@pytest.fixture(scope="module")
def searches(tmp_path_factory):
    space = get_space("spos", "cifar10", width=0.25)
    cpu = synthetic_table(space, device="cpu")
    phone = synthetic_table(space, device="phone", ms_per_mmac=0.05)
    target = 1.05 * cpu.minimum_latency() + 0.3 * (np.mean([lat.max() - lat.min() for lat in cpu.latency_matrix()[1]])
                                                    * len(space.layers))
    root = tmp_path_factory.mktemp("searches")
    evaluator = SyntheticEvaluator(space)
    run_search(Evolution(population=10, generations=3, parents=3), space=space, tables=[cpu, phone],
               target_ms=target, evaluator=evaluator, output=root / "evolution")
    run_search(RandomSearch(samples=30), space=space, tables=[cpu, phone], target_ms=target, evaluator=evaluator,
               output=root / "random")
    return root, target


def test_chart_data_of_one_search(searches):
    root, target = searches
    record = load_search(root / "evolution")
    data = chart_data([record])
    (series,) = data.series
    assert series.table == "cpu" and series.device == "cpu" and series.target_ms == target
    assert len(series.latency_ms) == len(record.candidates) == 30
    assert series.front.index.size >= 1 and series.front_archs[-1] == record.best["arch"]
    assert series.best_ms == record.best["latency_ms"]["cpu"] and series.best_accuracy == record.best["accuracy"]
    assert data.xlabel == "latency (ms) on cpu" and data.ylabel == "validation accuracy (%)"
    (spos,) = data.references  # the SPOS reference is an architecture of this space: evaluated
    assert spos.name == "SPOS" and spos.accuracy is not None


def test_chart_data_overlays_searches_and_devices(searches):
    root, target = searches
    records = [load_search(root / "evolution"), load_search(root / "random")]
    data = chart_data(records, ["all"])
    assert [(s.search, s.table) for s in data.series] == [("evolution", "cpu"), ("evolution", "phone"),
                                                          ("random", "cpu"), ("random", "phone")]
    assert [s.target_ms for s in data.series] == [target, None, target, None]  # only the constraining table
    assert [s.best_ms is not None for s in data.series] == [True, False, True, False]
    assert data.xlabel == "latency (ms) on cpu, phone"
    assert {(m.name, m.table) for m in data.references} == {("SPOS", "cpu"), ("SPOS", "phone")}
    with pytest.raises(ConfigError, match=r"tables to plot must be among those of search .* \(cpu, phone\), but got "
                                          r"gpu"):
        chart_data(records, ["gpu"])


@pytest.mark.parametrize("suffix", [".png", ".svg", ".pdf"])
def test_drawing_writes_the_format_of_the_extension(searches, tmp_path, suffix):
    root, _ = searches
    data = chart_data([load_search(root / "evolution"), load_search(root / "random")])
    path = draw_chart(data, tmp_path / f"pareto{suffix}")
    head = path.read_bytes()[:8]
    assert {".png": head.startswith(b"\x89PNG"), ".svg": b"<?xml" in head, ".pdf": head.startswith(b"%PDF")}[suffix]


def test_legend_sits_outside_the_axes(searches, tmp_path, monkeypatch):
    from matplotlib.figure import Figure

    root, _ = searches
    saved = []
    def savefig(self, path, *args, **kwargs):  # only keeps the figure (the file it is written to stays empty)
        saved.append(self)
        open(path, "wb").close()

    monkeypatch.setattr(Figure, "savefig", savefig)
    draw_chart(chart_data([load_search(root / "evolution"), load_search(root / "random")]), tmp_path / "p.png")
    (fig,) = saved
    (ax,) = fig.axes
    assert ax.get_legend() is None and len(fig.legends) == 1
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert "evolution (cpu): returned architecture" in labels and "reference architectures" in labels


def test_drawing_refuses_other_formats(searches, tmp_path):
    root, _ = searches
    with pytest.raises(ConfigError, match=r"must end in .png, .svg, .pdf, but got 'pareto.gif'"):
        draw_chart(chart_data([load_search(root / "random")]), tmp_path / "pareto.gif")


def test_measured_front_on_this_machine(tmp_path):
    """A table described as this machine's cpu with a quick protocol: the front is measured end to end."""
    space = get_space("spos", "cifar10", width=0.25)
    cpu = get_device("cpu")
    quick = Protocol(warmup_s=0, min_block_s=0.001, rounds=3, rotate=1, remeasure=0)
    table = synthetic_table(space, device_header=device_header(cpu), protocol=quick.to_dict(),
                            path=tmp_path / "cpu.jsonl")
    run_search(RandomSearch(samples=6), space=space, tables=[table], target_ms=10 * table.minimum_latency(),
               evaluator=SyntheticEvaluator(space), output=tmp_path / "s", references=False)
    records = [load_search(tmp_path / "s")]
    measured = measure_front(chart_data(records), records)
    (series,) = measured.series
    assert series.measured_ms is not None and len(series.measured_ms) == len(series.front.index)
    assert (series.measured_ms > 0).all()
    draw_chart(measured, tmp_path / "measured.png")
    (tmp_path / "cpu.jsonl").unlink()
    with pytest.raises(TableError, match="must exist"):
        measure_front(chart_data(records), records)

"""Threads for training and evaluation: as many as there are idle cores."""

import pytest
import torch

from hwnas import threads


def write_stat(path, idle, total):
    """A /proc/stat first line whose idle (+ iowait) and total jiffies are the given ones."""
    busy = total - idle
    path.write_text(f"cpu  {busy} 0 0 {idle - 10} 10 0 0 0 0 0\ncpu0 0 0 0 0 0 0 0 0 0 0\n")


@pytest.mark.parametrize("idle_share, cores, expected", [(1.0, 2, 2.0), (0.5, 2, 1.0), (0.25, 4, 1.0)])
def test_idle_cores_are_the_unused_share_of_cpu_time_over_the_sample(tmp_path, monkeypatch, idle_share, cores,
                                                                    expected):
    stat = tmp_path / "stat"
    monkeypatch.setattr(threads, "STAT", stat)
    monkeypatch.setattr(threads.os, "cpu_count", lambda: cores)
    write_stat(stat, 1000, 4000)

    def sleep(seconds):  # over the sample, 400 jiffies pass, idle_share of them idle
        assert seconds == 0.25
        write_stat(stat, 1000 + int(400 * idle_share), 4400)

    assert threads.idle_cores(sleep=sleep) == pytest.approx(expected)


def test_unknown_where_the_system_does_not_say(tmp_path, monkeypatch):
    monkeypatch.setattr(threads, "STAT", tmp_path / "missing")
    assert threads.idle_cores(sleep=lambda s: None) is None
    stat = tmp_path / "stat"
    monkeypatch.setattr(threads, "STAT", stat)
    write_stat(stat, 10, 100)
    assert threads.idle_cores(sleep=lambda s: None) is None, "no time passed"


@pytest.mark.parametrize("idle, usable, expected", [(None, 4, 4), (2.0, 2, 2), (1.4, 2, 1), (1.6, 2, 2), (0.1, 2, 1),
                                                    (7.9, 4, 4)])
def test_threads_are_the_idle_cores_at_least_one_at_most_the_usable(idle, usable, expected):
    assert threads.choose_threads(idle, usable) == expected


def test_configure_sets_torchs_threads(monkeypatch):
    assert threads.configure(1) == 1 and torch.get_num_threads() == 1
    monkeypatch.setattr(threads, "idle_cores", lambda: 0.7)
    monkeypatch.setattr(threads, "usable_cores", lambda: 2)
    assert threads.configure() == 1 and torch.get_num_threads() == 1
    monkeypatch.setattr(threads, "idle_cores", lambda: 1.9)
    assert threads.configure() == 2 and torch.get_num_threads() == 2

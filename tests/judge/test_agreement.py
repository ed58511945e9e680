"""Ranking statistics: top-k overlap with ties, constant estimates, chance level, paired differences."""

import math

import numpy as np
import pytest
from scipy.stats import kendalltau

from hwnas.judge.agreement import _in_top_k, agreement, compare, reliability, statistics, top_k, top_k_overlap


def test_top_k_overlap_of_distinct_values():
    assert top_k_overlap(np.array([4, 3, 2, 1.0]), np.array([3, 4, 1, 2.0]), 2) == 1.0
    assert top_k_overlap(np.array([4, 3, 2, 1.0]), np.array([1, 2, 3, 4.0]), 2) == 0.0
    assert top_k_overlap(np.array([4, 3, 2, 1.0]), np.array([4, 1, 3, 2.0]), 2) == 0.5


def test_ties_are_broken_at_random_so_row_order_changes_nothing():
    truth = np.array([1.0, 2, 3, 4, 5, 6, 7, 8])
    estimate = np.array([1.0, 1, 1, 5, 5, 5, 5, 9])  # four tied for the 2nd and 3rd places of the top 3
    forward = top_k_overlap(truth, estimate, 3)
    backward = top_k_overlap(truth[::-1], estimate[::-1], 3)
    assert forward == pytest.approx(backward)
    # item 8 (value 9) is in; two of the four tied (truth 4..7) fill the other places: truth's top 3 are 6, 7, 8
    assert forward == pytest.approx((1 + 2 * 2 / 4) / 3)


def test_in_top_k_probabilities_sum_to_k():
    values = np.array([3.0, 3, 3, 1, 0, 5])
    assert _in_top_k(values, 2).tolist() == pytest.approx([1 / 3, 1 / 3, 1 / 3, 0, 0, 1])
    assert _in_top_k(values, 2).sum() == pytest.approx(2)


def test_a_constant_estimate_ranks_nothing():
    truth = np.arange(10.0)
    assert math.isnan(top_k_overlap(truth, np.ones(10), 3))
    assert all(math.isnan(v) for v in statistics(truth, np.ones(10), 3))
    tied = agreement(truth, np.ones(10), samples=100)
    assert math.isnan(tied["kendall_tau"].value) and math.isnan(tied["top_k_overlap"].value)


def test_chance_level_is_k_over_n():
    comparison = compare(np.arange(24.0), {"x": np.arange(24.0)}, samples=20)
    assert comparison.k == top_k(24) == 6 and comparison.chance_top_k == pytest.approx(0.25)
    rng = np.random.default_rng(0)
    overlaps = [top_k_overlap(np.arange(24.0), rng.permutation(24).astype(float), 6) for _ in range(2000)]
    assert np.mean(overlaps) == pytest.approx(0.25, abs=0.02), "a random order overlaps k / n on average"


def test_paired_differences_share_their_resamples():
    rng = np.random.default_rng(1)
    truth = rng.normal(size=30)
    good = truth + 0.3 * rng.normal(size=30)
    comparison = compare(truth, {"a": good, "b": good.copy(), "c": rng.normal(size=30)},
                         pairs=[("a", "b"), ("a", "c")], samples=300)
    same = comparison.differences[("a", "b")]["kendall_tau"]
    assert (same.value, same.low, same.high) == (0, 0, 0), "identical estimates differ by exactly 0 in every resample"
    better = comparison.differences[("a", "c")]["kendall_tau"]
    assert better.low > 0 and better.value == pytest.approx(
        comparison.agreements["a"]["kendall_tau"].value - comparison.agreements["c"]["kendall_tau"].value)
    rows = comparison.difference_rows()
    assert [r["compared"] for r in rows] == ["a - b", "a - c"] and rows[1]["kendall_tau_low"] > 0


def test_agreement_of_a_perfect_and_a_reversed_ranking():
    truth = np.arange(10.0)
    perfect = agreement(truth, truth * 2 + 1, samples=200)
    assert perfect["kendall_tau"].value == pytest.approx(1) and perfect["kendall_tau"].low == pytest.approx(1)
    assert perfect["spearman_rho"].value == pytest.approx(1) and perfect["top_k_overlap"].value == 1
    reversed_ = agreement(truth, -truth, samples=200)
    assert reversed_["kendall_tau"].value == pytest.approx(-1) and reversed_["top_k_overlap"].value == 0


def test_reliability_needs_two_trainings_of_an_architecture_and_three_architectures():
    assert reliability([[80.0], [81.0], [82.0]]) is None, "one training each: the noise is unknown"
    assert reliability([[80.0, 80.5], [81.0, 81.2]]) is None
    assert reliability([[80.0, 80.5], [81.0], [82.0]]) is not None, "one architecture trained twice is enough"


def test_noiseless_trainings_leave_the_truth_exact():
    truth = reliability([[80.0, 80.0], [81.0, 81.0], [83.0, 83.0], [82.0, 82.0]])
    assert truth.noise_sd == 0 and truth.ceiling.value == pytest.approx(1) and truth.repeat == pytest.approx(1)
    assert truth.signal_sd == pytest.approx(truth.spread_sd)


def test_architectures_that_differ_less_than_their_noise_cannot_be_ranked():
    # means 80.0, 80.1, 80.2; one training's sd about 1.4: noise explains all of the spread
    truth = reliability([[79.0, 81.0], [81.1, 79.1], [79.2, 81.2]])
    assert truth.ceiling.value == 0 and truth.repeat == 0 and truth.signal_sd == 0
    assert "would reach tau 0.00" in truth.text()


def test_the_ceiling_is_the_tau_of_a_perfect_estimator():
    """Architectures of known expected accuracy measured with two noisy trainings each: the ceiling is what the
    expected accuracy (a perfect estimator) reaches against the means, the repeat what a second measurement does."""
    rng = np.random.default_rng(0)
    n, signal, noise = 400, 1.0, 1.0
    expected = rng.normal(80, signal, n)
    first = expected[:, None] + rng.normal(0, noise, (n, 2))
    second = expected[:, None] + rng.normal(0, noise, (n, 2))
    truth = reliability(first.tolist(), samples=200)
    assert truth.noise_sd == pytest.approx(noise, rel=0.1) and truth.signal_sd == pytest.approx(signal, rel=0.15)
    perfect = kendalltau(expected, first.mean(1)).statistic
    repeat = kendalltau(first.mean(1), second.mean(1)).statistic
    assert truth.ceiling.value == pytest.approx(perfect, abs=0.05) and truth.repeat == pytest.approx(repeat, abs=0.05)
    assert truth.ceiling.low < truth.ceiling.value < truth.ceiling.high
    assert truth.row()["ceiling_kendall_tau"] == pytest.approx(truth.ceiling.value, abs=1e-4)

"""Values quoted in errors are cut to a readable length, with their full length: a huge field in a user's file
(a 200 MB one-line CSV field) or a huge option value is never echoed back whole in the one-line error."""

import pytest

from hwnas.errors import QUOTE_LIMIT, DataError, quoted
from hwnas.readers import Column, read_csv
from hwnas.space import get_space
from hwnas.testing import synthetic_table
from cli_helpers import one_line_error, run

HUGE = 5 * 2**20  # 5 MiB stands for the probe's 200 MB: the same code path, in a test's time


def test_quoted_cuts_long_values_and_says_how_long_they_were():
    assert quoted("abc") == "'abc'" and quoted(3) == "3" and quoted(None) == "None"
    long = "x" * HUGE
    shown = quoted(long)
    assert shown.startswith("'xxx") and shown.endswith(f"... ({HUGE} characters)") and len(shown) < QUOTE_LIMIT + 40
    assert quoted("y" * (QUOTE_LIMIT + 5)).endswith(f"... ({QUOTE_LIMIT + 5} characters)")
    assert quoted(list(range(1000))).endswith("characters as written)")
    assert quoted("z" * (QUOTE_LIMIT - 2)) == repr("z" * (QUOTE_LIMIT - 2))  # short enough: whole


def test_a_huge_csv_cell_is_quoted_cut(tmp_path):
    path = tmp_path / "c.csv"
    path.write_text("arch,latency_ms\nx," + "9x" * 50_000 + "\n")  # under the csv module's field limit
    with pytest.raises(DataError) as info:
        read_csv(path, "a measured CSV", {"arch": "text", "latency_ms": Column("number")}, DataError)
    assert "(100000 characters)" in str(info.value) and len(str(info.value)) < 400


@pytest.fixture(scope="module")
def table(tmp_path_factory):
    path = tmp_path_factory.mktemp("table") / "t.jsonl"
    synthetic_table(get_space("spos", "cifar10", width=0.25), path=path)
    return path


ARCH = "-".join(["shuffle_k3"] * 20)


@pytest.mark.parametrize("content, message", [
    (f"arch,latency_ms\n{ARCH},{'9' * HUGE}\n", "but line 2 has '999"),
    (f"arch,latency_ms\n{'k' * HUGE},3\n", "but got 1 ops in 'kkk"),
    (f"arch,latency_ms\n{ARCH[:-10]}{'q' * HUGE},3\n", "but got 'qqq"),
    (f"arch,{'c' * HUGE}\n", "lacks 'latency_ms' (its columns: 'arch, ccc"),
])
def test_table_adapt_quotes_a_huge_field_cut(table, tmp_path, content, message):
    measured = tmp_path / "m.csv"
    measured.write_text(content)
    result = run("table", "adapt", table, measured, "-o", tmp_path / "out.jsonl")
    one_line_error(result, message)
    assert "characters)" in result.output and len(result.output) < 500


def test_a_huge_option_value_is_quoted_cut(tmp_path):
    result = run("train", "--space", "spos", "--dataset", "synthetic", "-o", tmp_path / "r", "--lr", "3x" * 100_000)
    one_line_error(result, "(200000 characters)")
    assert len(result.output) < 400
    one_line_error(run("arch", "spos", "q" * 100_000), "(100000 characters)")
    one_line_error(run("arch", "q" * 100_000, "x"), "(100000 characters)")

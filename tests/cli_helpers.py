"""What the CLI tests share: invoking `hwnas` in-process and the one-line error every bad input must give."""

import re

from click.testing import CliRunner

from hwnas.cli import cli


def run(*args):
    """``hwnas ARGS...`` in this process (arguments may be paths or numbers)."""
    return CliRunner().invoke(cli, [str(a) for a in args])


def one_line_error(result, message: str) -> None:
    """Exit code 2 and a single line ``Error: ...`` that contains ``message``."""
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and message in lines[0], result.output


def readme_line(start: str) -> str:
    """The expression of the README's line ``rows = <start>...`` (the output convention's pandas one-liners)."""
    import re
    from pathlib import Path

    text = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    return re.search(rf"^rows = ({re.escape(start)}.*?)\s+#", text, flags=re.M).group(1)


def same_rows(*args, vary=(), json_args=None):
    """The output convention for ``hwnas ARGS``: ``--format csv`` and ``--format json``, read with the README's
    one-liners, give equal DataFrames (same columns, dtypes and values; the columns in ``vary``, figures that
    change from one invocation to the next such as timings, by dtype only); the JSON is strict, holds
    ``rows`` and ``summary`` only; no cell is a totals label, a dict or a Python repr. ``json_args`` replace
    ``args`` for the JSON (a command whose output folder must be new). Returns (rows, summary) of the JSON."""
    import io
    import json

    import pandas as pd

    csv, js = run(*args, "--format", "csv"), run(*(json_args or args), "--format", "json")
    assert csv.exit_code == 0 and js.exit_code == 0, csv.output + js.output

    def refuse(constant):
        raise ValueError(f"not strict JSON: {constant}")

    data = json.loads(js.stdout, parse_constant=refuse)
    assert set(data) == {"rows", "summary"} and isinstance(data["summary"], dict), list(data)
    namespace = {"pd": pd, "io": io, "json": json}
    from_csv = eval(readme_line("pd.read_csv("), {**namespace, "text": csv.stdout})
    from_json = eval(readme_line("pd.DataFrame("), {**namespace, "text": js.stdout})
    assert list(from_csv.columns) == list(from_json.columns) and len(from_csv) == len(from_json), (
        list(from_csv.columns), list(from_json.columns))
    assert all(list(row) == list(from_json.columns) for row in data["rows"]), "every row has every column"
    for column in from_json.columns:
        a, b = from_csv[column], from_json[column]
        if b.isna().all():  # null has no type in JSON
            assert a.isna().all(), column
            continue
        assert a.dtype == b.dtype, (column, a.dtype, b.dtype)
        values = [v for v in (row[column] for row in data["rows"]) if v is not None]
        if all(isinstance(v, int) and not isinstance(v, bool) for v in values):
            assert str(a.dtype) in ("int64", "float64"), (column, a.dtype)  # float64 only where a value is missing
            assert str(a.dtype) == "int64" or len(values) < len(data["rows"]), (column, a.dtype)
        for v in values:
            assert not isinstance(v, (dict, list)), (column, v)
            assert not (isinstance(v, str) and (v.lower() == "total" or v.startswith(("{'", "[np.", "np.")))), (
                column, v)
        if column in vary:
            continue
        if a.dtype == object:  # true/false with gaps: a missing value is NaN from CSV, None from JSON
            assert a.isna().tolist() == b.isna().tolist() and a.dropna().tolist() == b.dropna().tolist(), column
        else:
            pd.testing.assert_series_equal(a, b, check_exact=False, rtol=1e-9, obj=column)
    shown = displayed_numbers(data["summary"])
    assert not shown, f"summary values that are numbers shown as text, not numbers: {shown}"
    return data["rows"], data["summary"]


#: a number written for reading: with or without a scale or a unit, alone or as a range ("244.45M", "1.23 ms",
#: "0.5..1.2", "12 %", "3")
_NUMBER = r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:e[-+]?\d+)?(?:\s*(?:%|[KMGT]\b|ms\b|s\b|mJ\b|MACs\b|params\b))?"
DISPLAYED_NUMBER = re.compile(rf"\s*{_NUMBER}(?:\s*(?:\.\.|±|\+-)\s*{_NUMBER})?\s*", flags=re.I)

#: keys whose text is a name that may be all digits, not a number (a space's layers are named "1", "2", ...)
NAMES = ("layers", "layer")


def displayed_numbers(value, where="summary") -> list[str]:
    """Where the JSON ``value`` (a command's summary) holds a number as display text rather than as a number
    (the output convention: `--format json` holds numbers as numbers), as ``where[key]...: text``."""
    if isinstance(value, str):
        return [f"{where}: {value!r}"] if DISPLAYED_NUMBER.fullmatch(value) else []
    if isinstance(value, dict):
        return [found for k, v in value.items() if k not in NAMES
                for found in displayed_numbers(v, f"{where}[{k!r}]")]
    if isinstance(value, list):
        return [found for i, v in enumerate(value) for found in displayed_numbers(v, f"{where}[{i}]")]
    return []

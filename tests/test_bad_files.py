"""Files that are not what they should be, as a careful new user meets them: tables, search directories, run
directories and architecture JSON that are binary, not UTF-8, pickled, of the wrong type, with a NaN or
negative latency or one block twice, or cut mid-row. Each is one line naming the file and the line (exit 2
through the CLI), and nothing is written or lost. And every JSON file the pipeline writes is strict JSON."""

import json
import math
import pickle
import random
import shutil
import warnings

import pandas as pd
import pytest

from hwnas.errors import CheckpointError, TableError
from hwnas.export import arch_from_search, export_architecture
from hwnas.search import RandomSearch, load_search, run_search, run_sweep
from hwnas.search.results import SearchWriter, write_json
from hwnas.space import get_space
from hwnas.tables import Calibration, LookupTable, TableWriter
from hwnas.testing import SyntheticEvaluator, synthetic_table, tiny_supernet_run
from hwnas.training import read_log, read_run
from cli_helpers import run

pytestmark = pytest.mark.usefixtures("one_thread")

SPACE = get_space("spos", "cifar10", width=0.25)
SPACE_ARGS = ["--space", "spos", "--input", "cifar10", "--width", "0.25"]
BAD = {"binary": bytes(range(256)) * 4, "invalid UTF-8": b'{"kind": "hwnas-lookup-table", "x": "\xff\xfe"}\n',
       "pickle": pickle.dumps({"kind": "hwnas-lookup-table", "latency_ms": 1.0})}


def strict(text):
    def refuse(name):
        raise ValueError(f"not strict JSON: {name}")
    return json.loads(text, parse_constant=refuse)


@pytest.fixture(scope="module")
def table_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("tables") / "cpu.jsonl"
    synthetic_table(SPACE, device="cpu", path=path)
    return path


@pytest.fixture(scope="module")
def search_dir(tmp_path_factory, table_path):
    path = tmp_path_factory.mktemp("searches") / "s"
    table = LookupTable.load(table_path)
    run_search(RandomSearch(samples=6), space=SPACE, tables=[table], target_ms=2 * table.minimum_latency(),
               evaluator=SyntheticEvaluator(SPACE), output=path)
    return path


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    return tiny_supernet_run(tmp_path_factory.mktemp("run") / "supernet", synthetic_size=64)


def copy(tmp_path, directory):
    return shutil.copytree(directory, tmp_path / directory.name)


# ----- tables ------------------------------------------------------------------------------------------------
def table_lines(table_path):
    return [json.loads(line) for line in table_path.read_text().splitlines()]


def write_lines(path, lines):
    path.write_text("".join((line if isinstance(line, str) else json.dumps(line)) + "\n" for line in lines))
    return path


@pytest.mark.parametrize("field,value,message", [
    ("latency_ms", -0.5, "line 3 is not a valid block record (latency_ms must be a finite number >= 0, but got -0.5)"),
    ("iqr_ms", -1, "line 3 is not a valid block record (iqr_ms must be a finite number >= 0, but got -1)"),
    ("latency_ms", "1.5",
     "a lookup table's block record must hold 'latency_ms' as a number, but {p} line 3 has \"1.5\""),
    ("rounds", 5.5, "a lookup table's block record must hold 'rounds' as a whole number, but {p} line 3 has 5.5"),
    ("macs", True, "must hold 'macs' as a whole number, but {p} line 3 has true"),
    ("params", -3, "line 3 is not a valid block record (params must be a whole number >= 0, but got -3)"),
    ("median_ms", -1.0, "line 3 is not a valid block record (median_ms must be a finite number >= 0, but got -1.0)"),
    ("latency_ms", None, "must hold 'latency_ms' as a number, but {p} line 3 has null"),
])
def test_a_record_of_the_wrong_type_or_range_is_refused(tmp_path, table_path, field, value, message):
    lines = table_lines(table_path)
    lines[2][field] = value
    path = write_lines(tmp_path / "t.jsonl", lines)
    with pytest.raises(TableError) as e:
        LookupTable.load(path)
    assert message.format(p=path) in str(e.value) and str(path) in str(e.value)


def test_nan_or_infinite_latency_is_not_json(tmp_path, table_path):
    lines = table_path.read_text().splitlines()
    for constant in ("NaN", "Infinity", "-Infinity"):
        record = json.loads(lines[4])
        record["latency_ms"] = "X"
        bad = lines[:4] + [json.dumps(record).replace('"X"', constant)] + lines[5:]
        path = write_lines(tmp_path / "t.jsonl", bad)
        with pytest.raises(TableError, match=rf"a lookup table file must be strict JSON, but .*t.jsonl line 5 column "
                                             rf"\d+ holds {constant}, which JSON does not allow"):
            LookupTable.load(path)


def test_one_block_twice(tmp_path, table_path):
    lines = table_lines(table_path)
    path = write_lines(tmp_path / "t.jsonl", [*lines, lines[3]])  # the same record again: harmless
    assert LookupTable.load(path).records == LookupTable.load(table_path).records
    other = dict(lines[3], latency_ms=lines[3]["latency_ms"] * 2)
    path = write_lines(tmp_path / "t.jsonl", [*lines, other])
    with pytest.raises(TableError) as e:
        LookupTable.load(path)
    assert str(e.value) == (f"a lookup table holds each block once, but {path} lines 4 and {len(lines) + 1} both "
                            f"hold {lines[3]['key']} with different values")


@pytest.mark.parametrize("field,value,message", [
    ("batch", "1", "a lookup table's header must hold 'batch' as a whole number, but {p} line 1 has \"1\""),
    ("device", "cpu", "a lookup table's header must hold 'device' as an object, but {p} line 1 has \"cpu\""),
    ("calibration", {"scale": "2"},
     "a lookup table's calibration must hold scale as a number, but {p} line 1 has \"2\""),
])
def test_a_header_of_the_wrong_type_is_refused(tmp_path, table_path, field, value, message):
    lines = table_lines(table_path)
    lines[0][field] = value
    path = write_lines(tmp_path / "t.jsonl", lines)
    with pytest.raises(TableError) as e:
        LookupTable.load(path)
    assert str(e.value) == message.format(p=path)


def test_tables_are_written_as_strict_json(tmp_path, table_path):
    table = LookupTable.load(table_path)
    key = next(iter(table.records))
    zero = table.records[key].__class__(**{**table.records[key].__dict__, "latency_ms": 0.0, "iqr_ms": 0.0})
    table.records[key] = zero  # rel_iqr of a zero latency is infinite: written as null
    table.set_calibration(Calibration(1.1, 0.2, 10))
    path = table.save(tmp_path / "t.jsonl")
    for line in path.read_text().splitlines():
        strict(line)
    assert LookupTable.load(path).records[key].latency_ms == 0.0
    table.set_calibration(Calibration(math.nan, 0.0))
    with pytest.raises(ValueError, match=r"finite numbers only, but data\['calibration'\]\['scale'\] is nan"):
        table.save(tmp_path / "t.jsonl")
    assert LookupTable.load(path).calibration == Calibration(1.1, 0.2, 10)  # the file is kept as it was
    before = path.read_bytes()
    with pytest.raises(ValueError, match="is inf"):
        with TableWriter(path, {**table.header, "batch": math.inf}):
            pass
    assert path.read_bytes() == before


# ----- search directories ------------------------------------------------------------------------------------
def test_candidates_cut_mid_row_are_read_with_a_warning(tmp_path, search_dir):
    path = copy(tmp_path, search_dir)
    text = (path / "candidates.csv").read_text()
    (path / "candidates.csv").write_text(text[: text.rindex(",", 0, len(text) - 20)])
    with pytest.warns(UserWarning, match=r"candidates.csv: dropped a truncated last line \(7\): it has \d+ of 11 fields"):
        record = load_search(path)
    assert len(record.candidates) == 5


@pytest.mark.parametrize("case,message", [
    ("garbage", "a search's candidates.csv must be UTF-8 text, but {p} is not: line 3 column 1 holds the byte 0xff"),
    ("accuracy", "a search's candidates.csv must have a finite number in [0, 100] in column 'accuracy', but {p} line 4 "
                 "has 'good'"),
    ("nan accuracy", "in column 'accuracy', but {p} line 4 has 'nan'"),
    ("latency", "a search's candidates.csv must have a finite number >= 0 in column 'latency_ms[cpu]', but {p} line 4 "
                "has '-1.0'"),
    ("columns", "a search's candidates.csv must have the columns arch, accuracy, latency_ms[cpu], macs, params, "
                "feasible, generation, origin, eval_index, but {p} lacks latency_ms[cpu]"),
    ("short row", "every row of a search's candidates.csv must have the 11 fields of its header, but {p} line 2 has 3"),
])
def test_bad_candidates_are_named_by_line(tmp_path, search_dir, case, message):
    path = copy(tmp_path, search_dir)
    csv_path = path / "candidates.csv"
    lines = csv_path.read_text().splitlines()
    if case == "garbage":
        data = "\n".join(lines[:2]).encode() + b"\n\xff\xfe\x00garbage\n" + "\n".join(lines[2:]).encode() + b"\n"
        csv_path.write_bytes(data)
    else:
        frame = pd.read_csv(csv_path)
        if case == "accuracy":
            frame["accuracy"] = frame["accuracy"].astype(object)
            frame.loc[2, "accuracy"] = "good"
        elif case == "nan accuracy":
            frame.loc[2, "accuracy"] = math.nan
        elif case == "latency":
            frame.loc[2, "latency_ms[cpu]"] = -1
        elif case == "columns":
            frame = frame.drop(columns="latency_ms[cpu]")
        text = frame.to_csv(index=False, na_rep="nan")
        if case == "short row":
            rows = text.splitlines()
            text = "\n".join([rows[0], "a,b,c", *rows[1:]]) + "\n"
        csv_path.write_text(text)
    with pytest.raises(CheckpointError) as e:
        load_search(path)
    assert message.format(p=csv_path) in str(e.value), str(e.value)


@pytest.mark.parametrize("name,content,message", [
    ("config.json", BAD["pickle"], "a search's config.json must be UTF-8 text, but {p} is not: line 1 column 1 holds "
                                   "the byte 0x80 (it is a binary file)"),
    ("config.json", b'{"space": {}, "tables": [], "target_latency_ms": "3ms"}',
     "a search's config.json must hold 'target_latency_ms' as a number, but {p} line 1 has \"3ms\""),
    ("config.json", b'{"space": {}, "tables": {}, "target_latency_ms": 3}',
     "a search's config.json must hold 'tables' as a list of objects, but {p} line 1 has {{}}"),
    ("best.json", b'{"arch": "a", "ops": [1], "space": {}, "accuracy": 1, "latency_ms": {}}',
     "a search's best.json must hold 'ops' as a list of strings, but {p} line 1 has [1]"),
    ("best.json", b'{"arch": "a", "ops": ["a"], "space": {}, "accuracy": 1, "latency_ms": {"cpu": "fast"}}',
     "a search's best.json must hold a latency >= 0 for every table, but {p} has \"fast\" for 'cpu'"),
    ("best.json", b'{"arch": "a", "ops": ["a"], "space": {}, "accuracy": NaN, "latency_ms": {}}',
     "a search's best.json must be strict JSON, but {p} line 1 column 54 holds NaN, which JSON does not allow "
     "(numbers must be finite)"),
])
def test_bad_search_json_is_named(tmp_path, search_dir, name, content, message):
    path = copy(tmp_path, search_dir)
    (path / name).write_bytes(content)
    with pytest.raises(CheckpointError) as e:
        load_search(path)
    assert str(e.value) == message.format(p=path / name)
    if name == "best.json":
        with pytest.raises(CheckpointError) as e:
            arch_from_search(path)
        assert str(e.value) == message.format(p=path / name)


def test_a_bad_state_is_refused_on_resume_and_kept(tmp_path, search_dir):
    path = copy(tmp_path, search_dir)
    config = json.loads((path / "config.json").read_text())
    for content, message in [(BAD["binary"], "a search's state.json must be UTF-8 text, but {p} is not"),
                             (b'{"evaluated": [["a-b", 50], ["c-d", "x"]]}',
                              "a search's state.json must hold 'evaluated' as [architecture, accuracy in [0, 100]] "
                              "pairs, but {p} has [\"c-d\", \"x\"] at position 1")]:
        (path / "state.json").write_bytes(content)
        with pytest.raises(CheckpointError) as e:
            SearchWriter(path).prepare(config)
        assert message.format(p=path / "state.json") in str(e.value)
        assert (path / "state.json").read_bytes() == content


def test_the_writer_refuses_what_is_not_json(tmp_path, search_dir):
    path = copy(tmp_path, search_dir)
    before = {p: p.read_bytes() for p in path.iterdir()}
    config = {**json.loads((path / "config.json").read_text()), "target_latency_ms": math.inf}
    with pytest.raises(ValueError, match=r"but data\['target_latency_ms'\] is inf"):
        SearchWriter(path).prepare(config, force=True)  # a bug of the caller: refused before anything is removed
    assert {p: p.read_bytes() for p in path.iterdir()} == before
    with pytest.raises(ValueError, match=r"JSON holds finite numbers only, but data\['target_latency_ms'\] is inf"):
        write_json(tmp_path / "best.json", {"target_latency_ms": math.inf})
    assert not (tmp_path / "best.json").exists()
    write_json(tmp_path / "refs.json", {"accuracy": math.nan}, nan_as_null=True)  # "not known"
    assert strict((tmp_path / "refs.json").read_text()) == {"accuracy": None}


# ----- run directories ---------------------------------------------------------------------------------------
def test_bad_run_directories(tmp_path, run_dir):
    path = copy(tmp_path, run_dir)
    stored = read_run(path)
    assert stored is not None and len(read_log(path)) == 1
    for content, message in [(BAD["pickle"], "a run's config.json must be UTF-8 text, but {p} is not"),
                             (b'{"space": [], "config": {}}', "a run's config.json must hold 'space' as an object, "
                                                             "but {p} line 1 has []"),
                             (b'{"space": {}, "config": {"lr": Infinity}}', "a run's config.json must be strict JSON, "
                                                                           "but {p} line 1 column 32 holds Infinity")]:
        (path / "config.json").write_bytes(content)
        with pytest.raises(CheckpointError) as e:
            read_run(path)
        assert message.format(p=path / "config.json") in str(e.value)
    log = path / "log.csv"
    text = log.read_text()
    log.write_text(text + "2,0.5,1")  # killed while appending epoch 2
    with pytest.warns(UserWarning, match=r"log.csv: dropped a truncated last line \(3\)"):
        assert len(read_log(path)) == 1
    log.write_bytes(text.encode() + b"\xff\xfe\n")
    with pytest.raises(CheckpointError, match=r"a run's log.csv must be UTF-8 text, but .*log.csv is not: line 3"):
        read_log(path)


# ----- through the CLI ---------------------------------------------------------------------------------------
def one_line_error(result, *parts):
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and isinstance(result.exception, SystemExit), result.exception
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
    for part in parts:
        assert part in lines[0], result.output


COMMANDS = {
    "table show": lambda bad, good: ["table", "show", bad],
    "table compare": lambda bad, good: ["table", "compare", good["table"], bad],
    "validate": lambda bad, good: ["validate", bad, "--archs", "10"],
    "search --table": lambda bad, good: ["search", *SPACE_ARGS, "--table", bad, "--target-latency", "3ms",
                                         "--strategy", "random", "--samples", "2", "-o", good["tmp"] / "out"],
    "profile -o": lambda bad, good: ["profile", *SPACE_ARGS, "--device", "cpu", "-o", bad],
    "plot (candidates.csv)": lambda bad, good: ["plot", good["search"], "-o", good["tmp"] / "p.png"],
    "plot (config.json)": lambda bad, good: ["plot", good["search"], "-o", good["tmp"] / "p.png"],
    "export (best.json)": lambda bad, good: ["export", bad, "-o", good["tmp"] / "out"],
    "arch": lambda bad, good: ["arch", "spos", bad, "--input", "cifar10", "--width", "0.25"],
}
BAD_FILE = {"plot (candidates.csv)": "candidates.csv", "plot (config.json)": "config.json",
            "export (best.json)": "best.json", "arch": "arch.json"}


@pytest.mark.parametrize("kind", list(BAD))
@pytest.mark.parametrize("command", list(COMMANDS))
def test_a_file_that_is_not_text_is_one_line_exit_2_and_kept(tmp_path, table_path, search_dir, command, kind):
    search = copy(tmp_path, search_dir)
    name = BAD_FILE.get(command, "bad.jsonl")
    bad = (search if name in ("candidates.csv", "config.json", "best.json") else tmp_path) / name
    bad.write_bytes(BAD[kind])
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    result = run(*COMMANDS[command](bad, {"table": table_path, "search": search, "tmp": tmp_path}))
    one_line_error(result, str(bad), "must be UTF-8 text" if kind != "binary" else "binary file")
    after = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    assert after == before  # nothing written, nothing lost


@pytest.mark.parametrize("content,message", [
    (b'{"ops": [1, 2, 3]}', "architecture JSON must hold 'ops' as a list of strings, but {p} line 1 has [1, 2, 3]"),
    (b'{"ops": null}', "architecture JSON must hold 'ops' as a list of strings, but {p} line 1 has null"),
])
def test_arch_json_of_the_wrong_type_is_one_line(tmp_path, content, message):
    path = tmp_path / "x.json"
    path.write_bytes(content)
    one_line_error(run("arch", "fbnet", path), message.format(p=path))


def test_a_table_with_a_negative_latency_is_one_line_in_every_command(tmp_path, table_path):
    lines = table_lines(table_path)
    lines[5]["latency_ms"] = -1.0
    bad = write_lines(tmp_path / "neg.jsonl", lines)
    text = bad.read_text()
    for args in (["table", "show", bad], ["table", "compare", table_path, bad], ["validate", bad],
                 ["profile", *SPACE_ARGS, "--device", "cpu", "-o", bad]):
        one_line_error(run(*args), f"{bad} line 6 is not a valid block record (latency_ms must be a finite number >= "
                                   "0, but got -1.0)")
    assert bad.read_text() == text


def test_plot_of_candidates_with_a_non_numeric_accuracy(tmp_path, search_dir):
    search = copy(tmp_path, search_dir)
    frame = pd.read_csv(search / "candidates.csv").astype({"accuracy": object})
    frame.loc[0, "accuracy"] = "n/a"
    frame.to_csv(search / "candidates.csv", index=False)
    one_line_error(run("plot", search, "-o", tmp_path / "p.png"),
                   f"in column 'accuracy', but {search / 'candidates.csv'} line 2 has 'n/a'")
    assert not (tmp_path / "p.png").exists()


# ----- everything written is strict JSON ---------------------------------------------------------------------
def test_every_json_file_the_pipeline_writes_is_strict(tmp_path, table_path, search_dir, run_dir):
    table = LookupTable.load(table_path)
    run_sweep(RandomSearch(samples=4), targets_ms=[1.5 * table.minimum_latency(), 3 * table.minimum_latency()],
              space=SPACE, tables=[table], evaluator=SyntheticEvaluator(SPACE), output=tmp_path / "sweep")
    fbnet = get_space("fbnet", "cifar10")  # FBNet-B and -C lie outside it: references without an accuracy
    fbnet_table = synthetic_table(fbnet, path=tmp_path / "fbnet.jsonl")
    run_search(RandomSearch(samples=3), space=fbnet, tables=[fbnet_table], target_ms=3 * fbnet_table.minimum_latency(),
               evaluator=SyntheticEvaluator(fbnet), output=tmp_path / "fbnet-search")
    export_architecture(SPACE, SPACE.sample(random.Random(0)), tmp_path / "export", onnx=False,
                        extra={"accuracy": 50.0})
    files = [p for root in (tmp_path, search_dir, run_dir, table_path.parent) for p in root.rglob("*")
             if p.suffix in (".json", ".jsonl")]
    names = {p.name for p in files}
    assert {"config.json", "best.json", "state.json", "sweep.json", "arch.json", "model.json", "cpu.jsonl"} <= names
    for path in files:
        text = path.read_text()
        for chunk in (text.splitlines() if path.suffix == ".jsonl" else [text]):
            strict(chunk)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert load_search(tmp_path / "fbnet-search").references["accuracy"].isna().any()

"""`hwnas.readers` and `hwnas.files.dump_json`: every file hwnas reads goes through one reader, whose errors are
one line naming the file and the line; everything hwnas writes as JSON is strict JSON."""

import json
import math
import pickle
import warnings

import numpy as np
import pytest

from hwnas.errors import ArchitectureError, CheckpointError, HwnasError, TableError
from hwnas.files import dump_json
from hwnas.readers import Column, check_fields, parse_json, read_csv, read_json, read_json_lines, read_text
from hwnas.space import Architecture, get_space, resolve_arch

PICKLE = pickle.dumps({"ops": ["k3_e6"], "latency_ms": 1.0})


def one_line(exc_info, *parts):
    message = str(exc_info.value)
    assert "\n" not in message, message
    for part in parts:
        assert part in message, message
    return message


# ----- read_text ---------------------------------------------------------------------------------------------
def test_text_that_cannot_be_read_is_named(tmp_path):
    with pytest.raises(TableError) as e:
        read_text(tmp_path / "nope.txt", "a thing", TableError)
    one_line(e, "a thing must exist, but", "nope.txt does not")
    with pytest.raises(TableError) as e:
        read_text(tmp_path, "a thing", TableError)
    one_line(e, "a thing must be a file, but", "is a directory")
    path = tmp_path / "bad.txt"
    path.write_bytes(b"fine\nalso fine\nok \xff\xfe then\n")
    with pytest.raises(TableError) as e:
        read_text(path, "a thing", TableError)
    assert str(e.value) == f"a thing must be UTF-8 text, but {path} is not: line 3 column 4 holds the byte 0xff"
    path.write_bytes(PICKLE)
    with pytest.raises(TableError) as e:
        read_text(path, "a thing", TableError)
    one_line(e, "must be UTF-8 text, but", "line 1 column 1 holds the byte 0x80 (it is a binary file)")
    path.write_bytes(b"text at first\n\0\0\0\0")  # valid UTF-8, but no text holds a NUL
    with pytest.raises(TableError) as e:
        read_text(path, "a thing", TableError)
    assert str(e.value) == f"a thing must be text, but {path} is a binary file: line 2 column 1 holds a NUL byte"


def test_text_is_utf8_without_a_byte_order_mark(tmp_path):
    path = tmp_path / "ok.txt"
    path.write_bytes("\ufeffcafé\n".encode())
    assert read_text(path, "a thing") == "café\n"


# ----- JSON --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("text,message", [
    ('{"a": 1,\n "b": NaN}', "must be strict JSON, but {p} line 2 column 7 holds NaN, which JSON does not allow"),
    ('{"a": [1, -Infinity]}', "line 1 column 11 holds -Infinity, which JSON does not allow"),
    ('{"a": "NaN", "b": Infinity}', "line 1 column 19 holds Infinity"),
    ('{"a": {"b": 1,\n"b": 2}}', "line 2 column 1 holds the name 'b' a second time in one object"),
    ('{"a": 1,\n "b": }', "must be JSON, but {p} line 2 is not JSON (Expecting value at column 7)"),
    ("", "must be JSON, but {p} line 1 is not JSON (Expecting value at column 1)"),
    ('[{"a": 1}]', "must be a JSON object, but {p} holds a list [{{\"a\": 1}}]"),
    ('{"a": "1"}', "must hold 'a' as a whole number, but {p} line 1 has \"1\""),
    ('{"b": 1}', "must hold 'a', but {p} lacks it"),
    ('{"a": true}', "must hold 'a' as a whole number, but {p} line 1 has true"),
])
def test_json_must_be_strict_and_typed(tmp_path, text, message):
    path = tmp_path / "x.json"
    path.write_text(text)
    with pytest.raises(CheckpointError) as e:
        read_json(path, "a thing", CheckpointError, fields={"a": int})
    one_line(e, "a thing ", message.format(p=path))


def test_json_field_types_and_their_lines():
    text = '{\n  "name": "x",\n  "ops": ["a", 2],\n  "inner": {"ops": 3}\n}'
    with pytest.raises(HwnasError, match=r"must hold 'ops' as a list of strings, but f.json line 3 has \[\"a\", 2\]"):
        check_fields(json.loads(text), {"name": str, "ops": list[str]}, "f.json", "a thing", text=text)
    check_fields({"a": None, "b": 2.5, "c": 3}, {"a": dict | None, "b": float, "c": float}, "f", "a thing")
    assert parse_json('{"a": [1.5, "Infinity"]}', "f", "a thing") == {"a": [1.5, "Infinity"]}


def test_json_lines_drop_a_truncated_last_line_only(tmp_path):
    path = tmp_path / "x.jsonl"
    path.write_text('{"a": 1}\n\n{"a": 2}\n{"a": 3, "b"')
    with pytest.warns(UserWarning, match=r"x.jsonl: dropped a truncated last line \(4\)"):
        assert read_json_lines(path, "a thing") == [(1, {"a": 1}), (3, {"a": 2})]
    path.write_text('{"a": 1}\n{"a": 3, "b"\n{"a": 2}\n')
    with pytest.raises(HwnasError) as e:
        read_json_lines(path, "a thing")
    one_line(e, f"every line of a thing must be JSON, but {path} line 2 is not JSON (Expecting ':' delimiter at "
                "column 13)")
    path.write_text('{"a": 1}\n{"a": NaN}')  # not cut short: a value JSON does not allow
    with pytest.raises(HwnasError, match=r"line 2 column 7 holds NaN"):
        read_json_lines(path, "a thing")
    path.write_text('{"a": 1')  # the only line: nothing was ever written whole
    with pytest.raises(HwnasError, match="line 1 is not JSON"):
        read_json_lines(path, "a thing")


# ----- CSV ---------------------------------------------------------------------------------------------------
COLUMNS = {"arch": "text", "accuracy": Column("number", 0, 100), "macs": Column("int", 0),
           "feasible": Column("bool", empty=True)}
GOOD = "arch,accuracy,macs,feasible\na-b,50.5,10,True\nb-a,40.0,12,\n"


def test_csv_reads_as_pandas_does(tmp_path):
    path = tmp_path / "c.csv"
    path.write_text(GOOD)
    frame = read_csv(path, "a thing", COLUMNS)
    assert list(frame["accuracy"]) == [50.5, 40.0] and frame["macs"].dtype == np.int64
    assert frame["feasible"][0] is True or frame["feasible"][0] == True  # noqa: E712 - pandas' object column


@pytest.mark.parametrize("text,message", [
    ("", "must start with a header line, but {p} is empty"),
    ("arch,accuracy\na-b,5\n", "must have the columns arch, accuracy, macs, feasible, but {p} lacks macs, feasible"),
    (GOOD + "c-d,high,3,False\n", "must have a finite number in [0, 100] in column 'accuracy', but {p} line 4 has "
                                  "'high'"),
    (GOOD + "c-d,101,3,False\n", "column 'accuracy', but {p} line 4 has '101'"),
    (GOOD + "c-d,nan,3,False\n", "column 'accuracy', but {p} line 4 has 'nan'"),
    (GOOD + "c-d,inf,3,False\n", "column 'accuracy', but {p} line 4 has 'inf'"),
    (GOOD + "c-d,1,3.5,False\n", "must have a whole number >= 0 in column 'macs', but {p} line 4 has '3.5'"),
    (GOOD + "c-d,1,3,yes\n", "must have a True or False or nothing in column 'feasible', but {p} line 4 has 'yes'"),
    (GOOD + ",1,3,True\n", "must have a non-empty text in column 'arch', but {p} line 4 has ''"),
    ("arch,accuracy,macs,feasible\na-b,50.5,10\nb-a,40.0,12,True\n",
     "every row of a thing must have the 4 fields of its header, but {p} line 2 has 3"),
    (GOOD + "c-d,1,3,True,extra\n", "every row of a thing must have the 4 fields of its header, but {p} line 4 has 5"),
    ("arch,arch,macs\n", "must name each column once, but {p} line 1 names 'arch' more than once"),
])
def test_csv_errors_name_the_line(tmp_path, text, message):
    path = tmp_path / "c.csv"
    path.write_text(text)
    with pytest.raises(CheckpointError) as e:
        read_csv(path, "a thing", COLUMNS, CheckpointError)
    one_line(e, message.format(p=path))


def test_csv_drops_a_row_cut_short_at_the_end_only(tmp_path):
    path = tmp_path / "c.csv"
    path.write_text(GOOD + "c-d,33.")
    with pytest.warns(UserWarning, match=r"c.csv: dropped a truncated last line \(4\): it has 2 of 4 fields"):
        frame = read_csv(path, "a thing", COLUMNS)
    assert list(frame["arch"]) == ["a-b", "b-a"]
    path.write_bytes(GOOD.encode() + b"c-d,3\xff\xfe,1,True\n")
    with pytest.raises(HwnasError) as e:
        read_csv(path, "a thing", COLUMNS)
    one_line(e, "a thing must be UTF-8 text, but", "line 4 column 6 holds the byte 0xff")
    path.write_text("arch,accuracy,macs,feasible\n")
    with pytest.raises(HwnasError, match="^no rows$"):
        read_csv(path, "a thing", COLUMNS, none_message="no rows")
    assert read_csv(path, "a thing", COLUMNS).empty


# ----- writing -----------------------------------------------------------------------------------------------
def strict(text):
    def refuse(name):
        raise ValueError(f"not strict JSON: {name}")
    return json.loads(text, parse_constant=refuse)


def test_dump_json_is_strict():
    data = {"a": [1.0, np.float32(2.5), np.int64(3), np.bool_(True)], "b": np.arange(2)}
    assert strict(dump_json(data)) == {"a": [1.0, 2.5, 3, True], "b": [0, 1]}
    with pytest.raises(ValueError, match=r"JSON holds finite numbers only, but data\['x'\]\[1\] is nan"):
        dump_json({"x": [1.0, math.nan]})
    with pytest.raises(ValueError, match=r"but data\['t'\] is inf"):
        dump_json({"t": np.float64("inf")}, nan_as_null=True)  # null stands for "not known", not for infinite
    assert strict(dump_json({"x": [1.0, math.nan, {"y": np.nan}]}, nan_as_null=True)) == {"x": [1.0, None, {"y": None}]}
    with pytest.raises(TypeError, match=r"but data\['f'\] is a set"):
        dump_json({"f": {1}})


# ----- architecture JSON -------------------------------------------------------------------------------------
@pytest.mark.parametrize("content,message", [
    (b'{"ops": [1, 2, 3]}', "architecture JSON must hold 'ops' as a list of strings, but {p} line 1 has [1, 2, 3]"),
    (b'{"ops": "k3_e6-skip"}', "must hold 'ops' as a list of strings, but {p} line 1 has \"k3_e6-skip\""),
    (b'{"ops": []}', "architecture JSON must hold 'ops' as a list of op names, but {p} has []"),
    (b'["k3_e6"]', "architecture JSON must be a JSON object, but {p} holds a list"),
    (b'{"arch": "k3_e6"}', "architecture JSON must hold 'ops', but {p} lacks it"),
    (b'{"ops": ["k3_e6"], "ops": ["skip"]}', "must be strict JSON, but {p} line 1 column 20 holds the name 'ops' a "
                                             "second time"),
    (b"\xff\xfe{}", "an architecture JSON file must be UTF-8 text, but {p} is not: line 1 column 1"),
    (PICKLE, "an architecture JSON file must be UTF-8 text, but {p} is not"),
])
def test_architecture_json(tmp_path, content, message):
    path = tmp_path / "a.json"
    path.write_bytes(content)
    with pytest.raises(ArchitectureError) as e:
        Architecture.from_file(path)
    one_line(e, message.format(p=path))
    with pytest.raises(ArchitectureError) as e:
        resolve_arch("fbnet", str(path), "cifar10")
    one_line(e, str(path))


def test_architecture_json_round_trip(tmp_path):
    space = get_space("fbnet", "cifar10", width=0.25)
    arch = space.sample(__import__("random").Random(0))
    path = tmp_path / "a.json"
    path.write_text(arch.to_json(space))
    assert Architecture.from_file(path) == arch
    assert resolve_arch("fbnet", str(path), "cifar10", width=0.25)[1] == arch
    with pytest.raises(ArchitectureError, match="but the architecture JSON line 1 has"):
        Architecture.from_json('{"ops": [1]}')
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        strict(arch.to_json(space))

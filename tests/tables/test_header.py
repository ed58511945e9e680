"""A table header's settings are checked by type and range when the file is read: a setting of the wrong type,
length or range is one line naming the file, the setting and the value, in every command that reads a table
(it used to be a traceback where the setting was used: "zip() argument 2 is shorter", "can't multiply sequence
by non-int", "'str' object has no attribute 'get'")."""

import json

import pytest

from hwnas.errors import TableError
from hwnas.space import get_space
from hwnas.tables import LookupTable
from hwnas.testing import synthetic_table
from cli_helpers import one_line_error, run

SPACE = get_space("spos", "cifar10", width=0.25)


@pytest.fixture(scope="module")
def good_lines(tmp_path_factory):
    path = tmp_path_factory.mktemp("table") / "t.jsonl"
    synthetic_table(SPACE, path=path)
    return path.read_text().splitlines()


def with_header(lines, path, change):
    header = json.loads(lines[0])
    change(header)
    path.write_text("\n".join([json.dumps(header), *lines[1:]]) + "\n")
    return path


def setter(*keys_and_value):
    *keys, value = keys_and_value

    def change(header):
        target = header
        for key in keys[:-1]:
            target = target[key]
        if value is DELETE:
            del target[keys[-1]]
        else:
            target[keys[-1]] = value

    return change


DELETE = object()
BAD = {
    "stage channels of another length": (setter("space", "stage_channels", [64, 160]),
                                         "space.stage_channels as a list of 4 whole numbers in [1, 100000] (space "
                                         "spos), but {p} line 1 has [64, 160]"),
    "a width as a string": (setter("space", "width", "0.25"), "space.width as a number > 0 and <= 16, but {p} line 1 "
                                                              "has '0.25'"),
    "an input profile as a string": (setter("space", "input", "cifar10"), "space.input as an object"),
    "a batch of 0": (setter("batch", 0), "batch as a whole number in [1, 65536], but {p} line 1 has 0"),
    "an unknown dtype": (setter("dtype", "float64"), "dtype as one of float32, float16, bfloat16, int8, but {p} line 1 "
                                                     "has 'float64'"),
    "an unknown space": (setter("space", "space", "nope"), "space.space as one of "),
    "channels as a fraction": (setter("space", "stem_channels", 16.5), "space.stem_channels as a whole number"),
    "negative channels": (setter("space", "head_channels", -1), "space.head_channels as a whole number"),
    "channels in the list as strings": (setter("space", "stage_channels", ["64", 160, 320, 640]),
                                        "space.stage_channels as a list of 4 whole numbers"),
    "a setting the space does not take": (setter("space", "depth", 3),
                                          "space 'spos' takes settings stem_channels, stage_channels, head_channels, "
                                          "but got 'depth'"),
    "a resolution of 0": (setter("space", "input", "resolution", 0), "space.input.resolution as a whole number in "
                                                                     "[1, 2048]"),
    "an unknown input style": (setter("space", "input", "style", "tall"), "space.input.style as one of imagenet, "
                                                                          "cifar"),
    "rounds as a string": (setter("protocol", "rounds", "7"), "protocol.rounds as a whole number, but {p} line 1 has "
                                                             "'7'"),
    "too few rounds": (setter("protocol", "rounds", 1), "a valid measurement protocol, but {p} line 1 does not: rounds "
                                                        "must be >= 3"),
    "a device without a name": (setter("device", "name", DELETE), "device.name as a non-empty string, but {p} line 1 "
                                                                  "has None"),
    "threads as a string": (setter("device", "comparable", "threads", "4"), "device.comparable.threads as a whole "
                                                                            "number >= 1 or null"),
    "a huge width": (setter("space", "width", "9" * 1_000_000), "'9999999999"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_a_bad_header_setting_is_refused_when_the_table_is_read(case, good_lines, tmp_path):
    change, message = BAD[case]
    path = with_header(good_lines, tmp_path / "bad.jsonl", change)
    with pytest.raises(TableError) as info:
        LookupTable.load(path)
    text = str(info.value)
    assert message.format(p=path) in text and "\n" not in text and len(text) < 400, text


def test_a_good_header_loads_and_builds_its_space_once(good_lines, tmp_path):
    path = with_header(good_lines, tmp_path / "t.jsonl", lambda header: None)
    table = LookupTable.load(path)
    assert table._space is not None and table.space.describe() == SPACE.describe()


def _measured(tmp_path):
    measured = tmp_path / "measured.csv"
    measured.write_text("arch,latency_ms\n")
    return measured


COMMANDS = {
    "search": lambda bad, tmp: ["search", "--space", "spos", "--table", bad, "--target-latency", "3ms", "--strategy",
                                "random", "--samples", "2", "-o", tmp / "out"],
    "validate": lambda bad, tmp: ["validate", bad, "--archs", "10"],
    "table adapt": lambda bad, tmp: ["table", "adapt", bad, _measured(tmp), "-o", tmp / "adapted.jsonl"],
    "table show": lambda bad, tmp: ["table", "show", bad],
}
SHOWN = ["stage channels of another length", "a width as a string", "an input profile as a string", "a batch of 0",
         "rounds as a string", "a huge width"]


@pytest.mark.parametrize("case", SHOWN)
@pytest.mark.parametrize("command", list(COMMANDS))
def test_commands_that_read_a_bad_header_say_so_in_one_line(command, case, good_lines, tmp_path):
    change, message = BAD[case]
    bad = with_header(good_lines, tmp_path / "bad.jsonl", change)
    result = run(*COMMANDS[command](bad, tmp_path))
    one_line_error(result, message.format(p=bad))
    assert "Traceback" not in result.output and len(result.output) < 400
    assert not (tmp_path / "out").exists() and not (tmp_path / "adapted.jsonl").exists()

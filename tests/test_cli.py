import json

import click
import pytest

from hwnas import __version__
from hwnas.cli import cli
from cli_helpers import run


def test_version_and_help():
    assert __version__ in run("--version").output
    result = run("--help")
    assert result.exit_code == 0 and "spaces" in result.output and "arch" in result.output


def test_spaces_lists_the_four_spaces():
    result = run("spaces", "--format", "json")
    assert result.exit_code == 0
    rows = json.loads(result.output)["rows"]
    assert {r["space"] for r in rows} == {"proxylessnas", "fbnet", "spos", "single_path_nas"}
    assert {r["space"]: r["layers"] for r in rows}["fbnet"] == 22
    table = run("spaces")
    assert table.exit_code == 0 and "single_path_nas" in table.output


def test_arch_json_totals_reproduce_proxylessnas_mobile():
    result = run("arch", "proxylessnas", "ProxylessNAS-Mobile", "--input", "imagenet", "--format", "json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    total = data["summary"]["total"]
    assert total["macs"] == pytest.approx(320.4e6, rel=0.02)
    assert total["params"] == pytest.approx(4.08e6, rel=0.02)
    assert [r["layer"] for r in data["rows"]][:2] == ["stem", "first"] and len(data["rows"]) == 24
    assert data["rows"][2]["op"] == "k5_e3" and data["rows"][2]["input"] == "112x112"
    assert sum(r["macs"] for r in data["rows"]) == total["macs"]


def test_arch_string_table_and_csv():
    arch = "-".join(["shuffle_k3"] * 20)
    table = run("arch", "spos", arch, "--input", "cifar10")
    assert table.exit_code == 0 and "total" in table.output and "MACs" in table.output
    csv = run("arch", "spos", arch, "--input", "cifar10", "--format", "csv")
    assert csv.output.splitlines()[0] == "layer,op,cin,cout,stride,input,macs,params"
    assert len(csv.output.splitlines()) == 1 + 22, "the blocks only: the totals are the table's and json's"


def test_arch_from_json_file(tmp_path):
    from hwnas.space import REFERENCES

    path = tmp_path / "a.json"
    path.write_text(REFERENCES.get("SPOS").arch.to_json())
    assert run("arch", "spos", str(path), "--format", "json").exit_code == 0


@pytest.mark.parametrize("args,message", [
    (("arch", "mnasnet", "FBNet-A"), "unknown search space 'mnasnet'; known search spaces: fbnet,"),
    (("arch", "fbnet", "FBNet-A", "--input", "mnist"), "unknown input profile 'mnist'; known input profiles:"),
    (("arch", "fbnet", "FBNet-Z"), "ARCH must be a reference name (MobileNetV2,"),
    (("arch", "spos", "FBNet-A"), "reference 'FBNet-A' belongs to space 'fbnet', but got space 'spos'"),
    (("arch", "spos", "shuffle_k3-xception"), "one op per layer (20 layers), but got 2 ops"),
    (("arch", "spos", "-".join(["shuffle_k3"] * 19 + ["k3_e6"])),
     "layer 20 of space 'spos' allows ops shuffle_k3, shuffle_k5, shuffle_k7, xception, but got 'k3_e6'"),
    (("arch", "spos", "SPOS", "--width", "0"), "Invalid value for '--width': must be a finite number > 0 and <= 16, "
                                               "but got '0'"),
    (("arch", "spos", "SPOS", "--input", "cifar10", "--width", "0.01"),
     "--width 0.01 is too small for space 'spos' (block shuffle(k=3) 8>8 s2 32x32"),
    (("spaces", "--input", "svhn"), "unknown input profile 'svhn'"),
    # click's own usage errors are one line too, without the usage text
    (("profile", "--space", "fbnet", "--statistic", "avg", "-o", "x.jsonl"),
     "Invalid value for '--statistic': 'avg' is not one of 'min', 'median'."),
    (("profile", "--space", "fbnet", "--rounds", "x", "-o", "x.jsonl"), "Invalid value for '--rounds': must be a finite integer >= 3 and <= 1000, but got 'x'"),
    (("profile", "-o", "x.jsonl"), "Missing option '--space'"),
    (("nosuch",), "No such command 'nosuch'"),
])
def test_bad_input_is_one_line_exit_2(args, message):
    result = run(*args)
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and message in lines[0], result.output
    assert "Traceback" not in result.output


def test_the_command_list_is_what_each_command_says_of_itself():
    """`hwnas --help` lists the commands without importing them; their lines are their docstrings' first."""
    from hwnas.cli import COMMANDS

    context = click.Context(cli)
    for name, (_, _, line) in COMMANDS.items():
        command = cli.get_command(context, name)
        assert command.name == name and command.get_short_help_str(limit=500) == line, name
    assert cli.get_command(context, "nosuch") is None


def test_help_and_version_import_no_torch():
    import subprocess
    import sys

    code = ("import sys; from hwnas.cli import main; sys.argv = ['hwnas', '--help']\n"
            "try:\n    main()\nexcept SystemExit:\n    pass\n"
            "assert 'torch' not in sys.modules, sorted(m for m in sys.modules if m.startswith('torch'))[:3]")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr

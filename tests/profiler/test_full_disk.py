"""A disk that fills while a table is being built: one line, exit 2, the records written so far kept whole (no
torn line), and the same command resumes once there is room."""

import errno
import json
import os

import pytest

from hwnas.errors import OutputError
from hwnas.space import get_space
from hwnas.tables import LookupTable, TableWriter
from cli_helpers import run

QUICK = ["--rounds", "3", "--min-block-ms", "1", "--rotate", "1", "--warmup-ms", "0", "--calm-wait-s", "0"]
SPACE = ["--space", "spos", "--input", "cifar10", "--width", "0.25"]


@pytest.fixture
def disk(monkeypatch):
    """``os.write`` to a file named ``t.jsonl`` fails with ENOSPC once it holds ``room`` lines, after writing the
    first 10 bytes of the line (as a disk that fills mid-write does)."""
    state = {"room": None}
    real = os.write

    def write(fd, data):
        try:
            name = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            name = ""
        if state["room"] is not None and name.endswith("t.jsonl"):
            with open(name, "rb") as f:
                if f.read().count(b"\n") >= state["room"]:
                    real(fd, bytes(data[:10]))
                    raise OSError(errno.ENOSPC, "No space left on device")
        return real(fd, data)

    monkeypatch.setattr(os, "write", write)
    return state


def test_a_full_disk_mid_build_keeps_whole_records_and_the_build_resumes(tmp_path, disk):
    path = tmp_path / "t.jsonl"
    disk["room"] = 6  # the header and 5 records
    result = run("profile", *SPACE, "--device", "cpu", *QUICK, "-o", path)
    assert result.exit_code == 2, result.output
    last = result.output.strip().splitlines()[-1]  # after the progress line
    assert last == (f"Error: {path}: record 6 could not be written (No space left on device); its 5 records are kept: "
                    f"free space and run the same command again to resume")
    data = path.read_bytes()
    assert data.endswith(b"\n") and data.count(b"\n") == 6  # no torn line
    keys = [json.loads(line)["key"] for line in data.decode().splitlines()[1:]]
    disk["room"] = None  # room again
    result = run("profile", *SPACE, "--device", "cpu", *QUICK, "-o", path)
    assert result.exit_code == 0, result.output
    table = LookupTable.load(path)
    space = get_space("spos", "cifar10", width=0.25)
    lines = path.read_text().splitlines()[1:]
    assert sorted(json.loads(line)["key"] for line in lines) == sorted(b.key for b in space.all_blocks())  # each once
    assert set(keys) <= set(table.records)


def test_a_header_that_does_not_fit_is_one_error_and_no_file(tmp_path, disk):
    disk["room"] = 0
    with pytest.raises(OutputError, match=r"t.jsonl: its header could not be written \(No space left on device\); "
                                          r"it holds no records yet"):
        TableWriter(tmp_path / "t.jsonl", {"kind": "test"})
    assert (tmp_path / "t.jsonl").read_bytes() == b""


def test_a_full_disk_while_a_log_line_is_appended_leaves_the_lines_before(tmp_path, disk):
    from hwnas.files import append_line

    path = tmp_path / "t.jsonl"
    with open(path, "a") as f:
        append_line(f, "one")
        disk["room"] = 1
        with pytest.raises(OutputError, match=r"t.jsonl could not be appended to \(No space left on device\); it "
                                              r"ends after its last whole line"):
            append_line(f, "two, which does not fit")
    assert path.read_text() == "one\n"


def test_a_checkpoint_is_written_like_every_other_file(tmp_path, monkeypatch):
    """torch's own writer reports a full disk as a RuntimeError ("enforce fail at inline_container.cc"): the
    checkpoint is serialised in memory first and written like every other file."""
    import torch

    from hwnas.training import run_dir as run_dir_module

    saved = []
    monkeypatch.setattr(run_dir_module, "write_atomic", lambda path, data: saved.append((path, data)))
    state = {key: {"w": torch.ones(2)} for key in run_dir_module.CHECKPOINT_KEYS - {"format"}}
    run_dir_module.write_checkpoint(tmp_path, state)
    ((path, data),) = saved
    assert isinstance(data, bytes) and path.name == "checkpoint.pt"  # write_atomic's full-disk handling applies
    import io

    assert torch.load(io.BytesIO(data), weights_only=True)["format"] == run_dir_module.CHECKPOINT_FORMAT

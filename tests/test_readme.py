"""The README's Python API section runs as written, in a fresh directory."""

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def python_api_blocks() -> list[str]:
    text = README.read_text()
    section = text[text.index("## Python API"):]
    section = section[:section.index("\n## ", 1)]
    return re.findall(r"```python\n(.*?)```", section, flags=re.S)


pytestmark = pytest.mark.usefixtures("one_thread")


def test_the_python_api_section_runs_as_written(tmp_path, monkeypatch, capsys):
    blocks = python_api_blocks()
    assert len(blocks) == 2
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    for block in blocks:  # one notebook: later blocks use what earlier ones defined
        exec(compile(block, str(README), "exec"), namespace)
    printed = capsys.readouterr().out
    assert "Cost(macs=" in printed and " ms" in printed
    assert (tmp_path / "spos-cpu.jsonl").is_file() and (tmp_path / "search" / "spos" / "best.json").is_file()

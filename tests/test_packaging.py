"""What pyproject.toml declares: the licence and the files that carry it, the typing marker."""

from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib")
ROOT = Path(__file__).resolve().parents[1]


def test_the_licence_is_declared_and_every_licence_file_exists():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["license"] == "Apache-2.0"
    assert "Apache License" in (ROOT / "LICENSE").read_text()[:200]
    for name in project["license-files"]:
        assert (ROOT / name).is_file(), name
    assert all("MIT License" in (ROOT / name).read_text() for name in project["license-files"][1:]), \
        "the bundled data keep their own licences"


def test_the_package_is_typed():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert (ROOT / "hwnas" / "py.typed").exists()
    assert "py.typed" in config["tool"]["setuptools"]["package-data"]["hwnas"]

"""`hwnas.testing.targets` over every registered kind of target, and proof that it catches a kind that breaks
the contract."""

from dataclasses import dataclass
from typing import ClassVar

import pytest

from hwnas.errors import ConfigError
from hwnas.profiler.adb import AdbTarget
from hwnas.profiler.session import TargetKind
from hwnas.profiler.targets import TARGETS, Target, register_target
from hwnas.testing.targets import check_target_kind

EXAMPLES = {
    Target: ({"local": "local", "ssh://pi@board": "ssh://pi@board", "ssh://board:2222?python=/usr/bin/python3":
              "ssh://board:2222"},
             ["ssh://", "ssh://-oProxyCommand=x", "ssh://pi@board\nx", "local://x", "ssh", "localhost"]),
    AdbTarget: ({"adb://": "adb://", "adb://emulator-5554": "adb://emulator-5554",
                 "adb://192.168.1.7:5555?benchmark=/opt/benchmark_model": "adb://192.168.1.7:5555"},
                ["adb://-s", "adb://a b", "adb://x;rm", "adb://x?other=1", "adb"]),
}


def test_every_registered_kind_has_examples_here():
    assert set(TARGETS.values()) == set(EXAMPLES)


@pytest.mark.parametrize("cls", list(EXAMPLES), ids=lambda c: c.__name__)
def test_target_kinds_conform(cls, monkeypatch):
    monkeypatch.delenv("HWNAS_SSH", raising=False)
    monkeypatch.delenv("HWNAS_ADB", raising=False)
    good, bad = EXAMPLES[cls]
    check_target_kind(cls, good, bad)


def test_a_scheme_is_registered_once():
    with pytest.raises(ConfigError, match="'adb' is already registered"):
        register_target(AdbTarget)


@dataclass(frozen=True)
class Unregistered(TargetKind):
    schemes: ClassVar[tuple[str, ...]] = ("tvm",)
    syntax: ClassVar[str] = "tvm://HOST"
    url: str

    @classmethod
    def parse(cls, text):
        return cls(text)


def test_the_suite_catches_a_kind_without_registration():
    with pytest.raises(AssertionError, match="must be registered"):
        check_target_kind(Unregistered, {}, [])

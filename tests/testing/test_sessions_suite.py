"""`hwnas.testing.sessions` over the sessions of this host and of a target (the `local` target: a separate
measuring process, as on a board over ssh), and proof that it catches a session that breaks the contract."""

import pytest

from hwnas.devices import get_device
from hwnas.profiler.remote import open_session
from hwnas.profiler.session import MeasuringSession, Session
from hwnas.profiler.targets import parse_target
from hwnas.space import get_space
from hwnas.testing.sessions import check_session
from hwnas.timing.protocol import Protocol

QUICK = Protocol(warmup_s=0.0, min_block_s=0.001, rounds=3, rotate=1, remeasure=0, calm_wait_s=0)


def blocks():
    space = get_space("spos", "cifar10", width=0.25, resolution=8)
    return space.all_blocks()[:2]


@pytest.mark.parametrize("where", ["host", "local target"])
def test_sessions_conform(where, one_thread):
    device = get_device("ort-mobile", threads=1)
    with open_session(device, QUICK, None if where == "host" else parse_target("local")) as session:
        check_session(session, blocks())
        check_session(session, blocks())  # a second batch: steady_ms is the fastest of two


class ForgetsTheReference(MeasuringSession):
    def measure(self, modules, *, reference="__reference__", seed=0, steady_ms=None):
        return super().measure(modules, reference=None, seed=seed, steady_ms=steady_ms)


def test_the_suite_catches_a_session_that_forgets_the_reference(one_thread):
    session = ForgetsTheReference(get_device("ort-mobile", threads=1), QUICK)
    with pytest.raises(AssertionError, match="reference"):
        check_session(session, blocks())


def test_a_session_is_a_session():
    assert issubclass(MeasuringSession, Session)
    with pytest.raises(TypeError):
        Session()

"""`hwnas.testing.devices` over every registered device (unavailable ones skipped after their refusal is
checked), and proof that it catches a device that breaks the contract."""

import pytest
import torch

from hwnas.devices import DEVICES, CpuDevice
from hwnas.devices.base import HostCallRunner
from hwnas.timing.protocol import Runner
from hwnas.testing.devices import check_device, check_info, check_prepare_leaves_caller_alone, check_runner


# ids name the device in a sentence: tests/conftest.py skips any test with a bare "cuda" keyword (a parameter
# id is one), and this test must run for cuda without a GPU too, to check its refusal
@pytest.mark.parametrize("name", DEVICES.names())
def test_device_conforms(name, one_thread):
    if not check_device(name):
        pytest.skip(f"device {name!r} is unavailable here ({DEVICES.get(name).availability()[1]}); only its "
                    f"refusal to be built was checked")


@pytest.mark.parametrize("name, precision", [(name, precision) for name in DEVICES.names()
                                             for precision in DEVICES.get(name).precisions[1:]])
def test_device_conforms_at_every_precision(name, precision, one_thread):
    if not check_device(name, precision=precision):
        pytest.skip(f"device {name!r} is unavailable here")


class EvalsTheCallersModule(CpuDevice):
    def _make_runner(self, module, args, protocol):
        module.eval()
        return HostCallRunner([lambda: module(*args)], torch_threads=self.threads)


class ThreadsRunner(Runner):
    def time_block(self, number):
        torch.set_num_threads(torch.get_num_threads() + 1)
        return 1e-3

    def close(self):
        pass


class ChangesThreads(CpuDevice):
    def _make_runner(self, module, args, protocol):
        return ThreadsRunner()


class NestedInfo(CpuDevice):
    def info(self):
        return {**super().info(), "cache": {"l2": 1}}


def test_a_device_that_touches_the_callers_module_is_caught():
    with pytest.raises(AssertionError, match="must leave the caller's module in training mode"):
        check_prepare_leaves_caller_alone(EvalsTheCallersModule())


def test_a_runner_that_leaves_other_threads_is_caught(one_thread):
    with pytest.raises(AssertionError, match=r"must leave \(torch threads, grad mode\) at \(1, True\)"):
        check_runner(ChangesThreads())


def test_nested_info_is_caught():
    with pytest.raises(AssertionError, match=r"must be flat .* but has \{'cache': 'dict'\}"):
        check_info(NestedInfo())

"""Device backends that blocks are timed on, by registry name.

``cpu`` (PyTorch eager), ``cuda`` (PyTorch on a GPU), ``ort-mobile`` (ONNX Runtime configured as a
phone's big core), ``ort-cpu`` (ONNX Runtime as a server runs it) and ``litert`` (the LiteRT interpreter with
XNNPACK, blocks converted by litert-torch; the ``litert`` extra) and ``executorch`` (ExecuTorch's runtime with
the XNNPACK delegate; the ``executorch`` extra). A new backend subclasses
:class:`Device` and is added with ``DEVICES.add(name, cls)``.
"""

from __future__ import annotations

from typing import Any

from hwnas.devices.base import DEVICES, Device, Example
from hwnas.devices.cpu import CpuDevice
from hwnas.devices.cuda import CudaDevice
from hwnas.devices.executorch import ExecuTorchDevice
from hwnas.devices.litert import LiteRtDevice
from hwnas.devices.ort_mobile import OrtCpuDevice, OrtMobileDevice

for _device in (CpuDevice, CudaDevice, OrtMobileDevice, OrtCpuDevice, LiteRtDevice, ExecuTorchDevice):
    DEVICES.add(_device.name, _device)


def get_device(name: str, **settings: Any) -> Device:
    """Build the device registered as ``name`` with its settings (``threads``, ``batch_size``,
    ``precision``, and device-specific ones such as ``cuda_graphs`` or ``exporter``)."""
    return DEVICES.get(name)(**settings)


def list_devices() -> list[str]:
    return DEVICES.names()


__all__ = ["DEVICES", "CpuDevice", "CudaDevice", "Device", "Example", "ExecuTorchDevice", "LiteRtDevice",
           "OrtCpuDevice", "OrtMobileDevice", "get_device", "list_devices"]

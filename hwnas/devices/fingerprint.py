"""What a latency figure depends on besides the block: the processor, its caches and the libraries.

Everything here is host-independent (no host name, no time, no user) so that two machines of the same
kind produce the same fingerprint and their tables can be compared.
"""

from __future__ import annotations

import functools
import os
import platform
from importlib import metadata
from pathlib import Path
from typing import Any

import torch

from hwnas.threads import usable_cores

LIBRARIES = ("numpy", "onnx", "onnxruntime", "onnxscript")


@functools.cache
def _cpuinfo() -> tuple[dict[str, str], int | None]:
    """First processor's fields of /proc/cpuinfo and the number of distinct physical cores."""
    path = Path("/proc/cpuinfo")
    if not path.exists():
        return {}, None
    first: dict[str, str] = {}
    cores: set[tuple[str, str]] = set()
    for entry in path.read_text().split("\n\n"):
        fields = dict(
            (key.strip(), value.strip()) for key, _, value in (line.partition(":") for line in entry.splitlines())
        )
        if not fields:
            continue
        first = first or fields
        if "core id" in fields:
            cores.add((fields.get("physical id", "0"), fields["core id"]))
    return first, len(cores) or None


def _cache_sizes() -> dict[str, str]:
    """Cache sizes of CPU 0 as the kernel reports them ("32K", "1024K", ...): the block copies that
    ``Protocol.rotate`` cycles through are sized against these."""
    sizes: dict[str, str] = {}
    for index in sorted(Path("/sys/devices/system/cpu/cpu0/cache").glob("index*")):
        try:
            level = (index / "level").read_text().strip()
            kind = (index / "type").read_text().strip()
            size = (index / "size").read_text().strip()
        except OSError:
            continue
        if kind != "Instruction":
            sizes[f"l{level}{'d' if kind == 'Data' else ''}_cache"] = size
    return sizes


def machine_info() -> dict[str, Any]:
    """Processor model, ISA level that torch dispatches to, cores and caches of this machine."""
    fields, physical = _cpuinfo()
    logical = os.cpu_count() or 1
    return {
        "machine": platform.machine(),
        "os": platform.system(),
        "cpu_model": fields.get("model name") or platform.processor() or platform.machine(),
        "cpu_vendor": fields.get("vendor_id", ""),
        "cpu_id": "/".join(fields.get(key, "?") for key in ("cpu family", "model", "stepping")) if fields else "",
        # Model names in VMs are often generic ("AMD EPYC"); the kernel ISA torch picked is not.
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "physical_cores": physical or logical,
        "logical_cores": logical,
        "usable_cores": usable_cores(),
        **_cache_sizes(),
    }


def library_versions() -> dict[str, str]:
    """Versions of Python and of the libraries that build or run the timed graphs."""
    # torch's own string keeps the build variant ("+cpu", "+cu130"), which the wheel metadata drops.
    versions = {"python": platform.python_version(), "torch": torch.__version__}
    for name in LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def fingerprint_mismatches(expected: dict[str, Any], actual: dict[str, Any]) -> list[str]:
    """One line per field of ``expected`` that ``actual`` lacks or differs in, e.g. for a table whose
    stored device key is checked against the device it is about to be used with."""
    return [
        f"{field}: {expected[field]!r} != {actual.get(field, '(missing)')!r}"
        for field in expected
        if actual.get(field) != expected[field]
    ]

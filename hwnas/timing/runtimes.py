"""The runtimes a measuring process times models in: one registry (`RUNTIMES`) of `Runtime` classes.

A runtime turns the bytes of a model (made on the host: ONNX, or a LiteRT flatbuffer) and its inputs into a
`hwnas.timing.protocol.Runner` that the protocol times, and says what a target's Python needs to do so. The
measuring process on a target (`hwnas.timing.target_main`) and the host's devices use the same classes, so a
block is timed by one code wherever it runs. Torch-free and written for Python 3.8, like the rest of
`hwnas.timing`: a board has only numpy and the runtime.

A new runtime: subclass `Runtime`, give it a ``name``, the ``modules`` it imports and their ``pip_names``, the
model ``suffix``, its settings (``from_settings`` / ``settings``), ``runner`` and ``outputs``; decorate it with
`register`; and run `hwnas.testing.runtimes.check_runtime` on a model of it (the project's tests do so for
every entry; a runtime whose library is missing here is skipped, saying why).
"""

from __future__ import annotations

import importlib.util
from abc import ABC, abstractmethod
from typing import Any, ClassVar, Dict, List, Optional, Sequence, Tuple, Type

import numpy as np

from hwnas.timing.protocol import Runner
from hwnas.timing.runners import package_version

#: every runtime by name
RUNTIMES: Dict[str, Type["Runtime"]] = {}


def register(cls: Type["Runtime"]) -> Type["Runtime"]:
    """Class decorator: add ``cls`` to `RUNTIMES` under its ``name`` (a name registered twice raises)."""
    if cls.name in RUNTIMES:
        raise ValueError(f"runtime names must be unique, but {cls.name!r} is already registered")
    RUNTIMES[cls.name] = cls
    return cls


class Runtime(ABC):
    """How models of one format are timed: a runtime with its settings (threads and the like)."""

    #: the registry name, also the ``runtime`` field of requests to a target
    name: ClassVar[str]
    #: the import names a Python needs to time models in this runtime, and how pip names them
    modules: ClassVar[Tuple[str, ...]]
    pip_names: ClassVar[Tuple[str, ...]]
    #: the model file suffix (models are kept on a target under their digest and this suffix)
    suffix: ClassVar[str]
    #: the distribution whose version a fingerprint records
    distribution: ClassVar[str]

    threads: int

    @classmethod
    def missing(cls) -> List[str]:
        """The modules of ``modules`` this Python cannot import (empty when the runtime is usable here)."""
        return [m for m in cls.modules if importlib.util.find_spec(m) is None]

    @classmethod
    def pip_command(cls, python: str = "python3") -> str:
        """The command that installs what the runtime needs."""
        return f"{python} -m pip install {' '.join(cls.pip_names)}"

    @classmethod
    def version(cls) -> Optional[str]:
        """The installed version of the runtime's library, or None without it."""
        return package_version(cls.distribution)

    @classmethod
    @abstractmethod
    def from_settings(cls, settings: Dict[str, Any]) -> "Runtime":
        """The runtime with the settings a host sent (the inverse of `settings`)."""

    @abstractmethod
    def settings(self) -> Dict[str, Any]:
        """The settings as JSON-serialisable data (what the host sends to a target)."""

    @abstractmethod
    def runner(self, model: bytes, feeds: Sequence[Dict[str, np.ndarray]]) -> Runner:
        """A runner that times ``model``, one copy per feed (the protocol's rotating copies)."""

    @abstractmethod
    def outputs(self, model: bytes, feed: Dict[str, np.ndarray]) -> List[np.ndarray]:
        """The model's outputs on ``feed``, in the model's output order (to check a model against PyTorch)."""


@register
class OnnxRuntime(Runtime):
    """ONNX Runtime, CPU provider, configured by `hwnas.timing.ort.SessionSettings`."""

    name = "onnxruntime"
    modules = ("numpy", "onnxruntime")
    pip_names = ("numpy", "onnxruntime")
    suffix = ".onnx"
    distribution = "onnxruntime"

    def __init__(self, session: Any):
        self.session = session  # hwnas.timing.ort.SessionSettings
        self.threads = session.threads

    @classmethod
    def from_settings(cls, settings: Dict[str, Any]) -> "OnnxRuntime":
        from hwnas.timing.ort import SessionSettings

        return cls(SessionSettings.from_dict(settings["session"]))

    def settings(self) -> Dict[str, Any]:
        return {"session": self.session.to_dict()}

    def runner(self, model: bytes, feeds: Sequence[Dict[str, np.ndarray]]) -> Runner:
        from hwnas.timing.ort import OrtRunner

        return OrtRunner([self.session.create(model) for _ in feeds], feeds)

    def outputs(self, model: bytes, feed: Dict[str, np.ndarray]) -> List[np.ndarray]:
        return list(self.session.create(model).run(None, feed))


@register
class LiteRt(Runtime):
    """The LiteRT (TFLite) interpreter with its default XNNPACK delegate and ``threads`` threads."""

    name = "litert"
    modules = ("numpy", "ai_edge_litert")
    pip_names = ("numpy", "ai-edge-litert")
    suffix = ".tflite"
    distribution = "ai-edge-litert"

    def __init__(self, threads: int):
        if not isinstance(threads, int) or isinstance(threads, bool) or threads < 1:
            raise ValueError(f"LiteRT threads must be an integer >= 1, but got {threads!r}")
        self.threads = threads

    @classmethod
    def from_settings(cls, settings: Dict[str, Any]) -> "LiteRt":
        return cls(settings["threads"])

    def settings(self) -> Dict[str, Any]:
        return {"threads": self.threads}

    def runner(self, model: bytes, feeds: Sequence[Dict[str, np.ndarray]]) -> Runner:
        from hwnas.timing.litert import LiteRtRunner, interpreter

        return LiteRtRunner([interpreter(model, self.threads) for _ in feeds], [list(f.values()) for f in feeds])

    def outputs(self, model: bytes, feed: Dict[str, np.ndarray]) -> List[np.ndarray]:
        from hwnas.timing.litert import outputs

        return list(outputs(model, list(feed.values()), self.threads).values())


def get_runtime(name: str, settings: Dict[str, Any]) -> Runtime:
    """The runtime ``name`` with ``settings``; an unknown name is a ValueError naming the known ones."""
    try:
        cls = RUNTIMES[name]
    except KeyError:
        raise ValueError(f"a runtime must be one of {', '.join(sorted(RUNTIMES))}, but got {name!r}") from None
    return cls.from_settings(settings)

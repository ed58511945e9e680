"""ONNX Runtime sessions configured as a device runs them, and a `Runner` that times them.

Imports nothing but the standard library, numpy, onnxruntime and the protocol, so that the same code
times a block in the host's ``ort-mobile`` / ``ort-cpu`` devices and on a target that has only numpy and
onnxruntime (`hwnas.timing.target_main`). Written for Python 3.8 and later, as targets may be.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any, Dict, List, Sequence, Tuple

import numpy as np
import onnxruntime as ort

from hwnas.timing.runners import CycleRunner

PROVIDER = "CPUExecutionProvider"


@dataclass(frozen=True)
class SessionSettings:
    """How a device configures ONNX Runtime: CPU provider, ``threads`` intra-op threads, one inter-op thread,
    sequential execution, every graph optimisation except ``disabled_optimizers``."""

    threads: int
    disabled_optimizers: Tuple[str, ...] = ()

    def options(self) -> ort.SessionOptions:
        options = ort.SessionOptions()
        options.intra_op_num_threads = self.threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3  # errors only: unused-initializer notes would flood a table run
        return options

    def create(self, model: bytes, optimized_model_path: str | None = None) -> ort.InferenceSession:
        """A session on ``model``; ``optimized_model_path`` also writes the graph ONNX Runtime runs."""
        options = self.options()
        if optimized_model_path is not None:
            options.optimized_model_filepath = optimized_model_path
        # ``disabled_optimizers`` is the keyword ONNX Runtime's mobile converter uses for the same purpose.
        return ort.InferenceSession(model, options, providers=[PROVIDER],
                                    disabled_optimizers=set(self.disabled_optimizers))

    def describe(self) -> Dict[str, Any]:
        """The settings as a device fingerprint records them."""
        options = self.options()
        return {"execution_provider": PROVIDER, "graph_optimization": options.graph_optimization_level.name,
                "disabled_optimizers": ",".join(self.disabled_optimizers),
                "execution_mode": options.execution_mode.name, "inter_op_threads": options.inter_op_num_threads}

    def to_dict(self) -> Dict[str, Any]:
        """The settings as JSON data (lists, not tuples)."""
        return {"threads": self.threads, "disabled_optimizers": list(self.disabled_optimizers)}

    @classmethod
    def from_dict(cls, data: Dict[str, Any]) -> SessionSettings:
        return cls(int(data["threads"]), tuple(data["disabled_optimizers"]))


class OrtRunner(CycleRunner):
    """Cycles ``run_with_iobinding`` over one session per copy, inputs and outputs pre-bound to numpy
    buffers, so a timed call allocates nothing and converts nothing.

    Timed as every `CycleRunner`.
    """

    def __init__(self, sessions: Sequence[ort.InferenceSession], feeds: Sequence[Dict[str, np.ndarray]]):
        if len(sessions) != len(feeds):
            raise ValueError(f"one feed per session is needed, but got {len(sessions)} sessions and {len(feeds)}")
        self.sessions = list(sessions)
        self._buffers: List[object] = []  # bound memory must outlive the bindings
        calls = []
        for session, feed in zip(sessions, feeds):
            binding = session.io_binding()
            for name, array in feed.items():
                binding.bind_cpu_input(name, array)
            for meta, output in zip(session.get_outputs(), session.run(None, feed)):
                value = ort.OrtValue.ortvalue_from_numpy(output)
                binding.bind_ortvalue_output(meta.name, value)
                self._buffers.append(value)
            self._buffers.append(feed)
            calls.append(functools.partial(session.run_with_iobinding, binding))
        super().__init__(calls)

    def close(self) -> None:
        self.sessions, self._buffers = [], []
        super().close()

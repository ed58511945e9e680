"""Timing a LiteRT (TFLite) model in the LiteRT interpreter, torch-free (numpy and ai-edge-litert only), so the
same runner serves the host and a board whose Python has nothing else.

The interpreter runs the model through its default XNNPACK delegate with ``threads`` threads (recorded in
the table's fingerprint). Inputs are set once per copy: ``invoke`` reads them again on every call, so a timed
call allocates nothing and converts nothing.
"""

from __future__ import annotations

from typing import Any, Dict, List, Sequence

import numpy as np

from hwnas.timing.runners import CycleRunner

#: what a LiteRT table was timed with, beside the library versions
DELEGATE = "XNNPACK (the interpreter's default CPU delegate)"


def interpreter(model: bytes, threads: int) -> Any:
    """A LiteRT interpreter on ``model`` with ``threads`` threads, its tensors allocated."""
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_content=model, num_threads=threads)
    it.allocate_tensors()
    return it


class LiteRtRunner(CycleRunner):
    """Cycles ``invoke`` over one interpreter per copy, each with its own inputs set once.

    Timed as every `CycleRunner`.
    """

    def __init__(self, interpreters: Sequence[Any], feeds: Sequence[Sequence[np.ndarray]]):
        if len(interpreters) != len(feeds):
            raise ValueError(f"one feed per interpreter is needed, but got {len(interpreters)} interpreters and "
                             f"{len(feeds)}")
        self.interpreters: List[Any] = list(interpreters)
        for it, feed in zip(self.interpreters, feeds):
            details = it.get_input_details()
            if len(details) != len(feed):
                raise ValueError(f"the model takes {len(details)} inputs, but got {len(feed)}")
            for detail, array in zip(details, feed):
                it.set_tensor(detail["index"], np.ascontiguousarray(array, dtype=detail["dtype"]))
            it.invoke()  # the first call prepares the delegate's kernels
        super().__init__([it.invoke for it in self.interpreters])

    def close(self) -> None:
        self.interpreters = []
        super().close()


def outputs(model: bytes, feed: Sequence[np.ndarray], threads: int = 1) -> Dict[str, np.ndarray]:
    """The model's outputs on ``feed`` (to check a conversion against PyTorch)."""
    it = interpreter(model, threads)
    for detail, array in zip(it.get_input_details(), feed):
        it.set_tensor(detail["index"], np.ascontiguousarray(array, dtype=detail["dtype"]))
    it.invoke()
    return {d["name"]: it.get_tensor(d["index"]).copy() for d in it.get_output_details()}

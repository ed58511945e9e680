"""Writing files so that a kill at any moment loses nothing already written.

`write_atomic` replaces a whole file (temporary file, fsync, rename): a reader sees the old file or the new
one, never half of either. `append_line` adds one line and forces it to disk before returning, which is
how tables and logs grow record by record. `dump_json` is the one way hwnas turns data into JSON: strict
JSON only (no NaN or Infinity, which other parsers refuse). `hwnas.readers` is the reading side.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO, Any

from hwnas.errors import OutputError


def write_atomic(path: str | os.PathLike, data: str | bytes | Callable[[Path], None]) -> Path:
    """Write ``data`` (text, bytes, or a function that writes the file at the path it is given) to ``path``
    through a temporary file beside it that is flushed to disk and then renamed over ``path``."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    try:
        if callable(data):
            data(tmp)
        else:
            with open(tmp, "wb" if isinstance(data, bytes) else "w") as f:
                f.write(data)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as exc:  # a full disk, a read-only file system: no torn temporary left, the old file kept
        tmp.unlink(missing_ok=True)
        raise OutputError(f"{path} could not be written ({exc.strerror or exc}); "
                          f"{'its previous content is unchanged' if path.exists() else 'nothing was written'}",
                          exc.strerror or str(exc)) from None
    return path


def append_line(file: IO[str], line: str) -> None:
    """Append ``line`` and a newline to a file open for appending and force both to disk, whole or not at all: a
    write that fails (a full disk) cuts the file back to where it ended and is one OutputError naming it."""
    file.flush()  # nothing of Python's buffer may follow the line
    append_whole(file.fileno(), (line + "\n").encode(), file.name)


def append_whole(fd: int, data: bytes, name: str | os.PathLike | int) -> None:
    """Append ``data`` to the file open for appending at ``fd`` and fsync it; when that fails, the file is cut
    back to its length before, so it never ends in a torn line, and the failure is an OutputError."""
    before = os.fstat(fd).st_size
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
    except OSError as exc:
        try:
            os.ftruncate(fd, before)
        except OSError:
            pass
        raise OutputError(f"{name} could not be appended to ({exc.strerror or exc}); it ends after its last whole "
                          f"line", exc.strerror or str(exc)) from None


def dump_json(data: Any, *, nan_as_null: bool = False, indent: int | None = None, sort_keys: bool = False) -> str:
    """``data`` as strict JSON text.

    numpy scalars and arrays become numbers and lists, paths strings. A NaN becomes null where the caller
    says it stands for "not known" (``nan_as_null``); any other non-finite number is a bug of the caller, so
    it is a ValueError naming where in ``data`` it lies, never a file other programs cannot read.
    """
    return json.dumps(_plain(data, nan_as_null, "data"), indent=indent, sort_keys=sort_keys, allow_nan=False)


def _plain(value: Any, nan_as_null: bool, where: str) -> Any:
    if isinstance(value, (str, bool, int)) or value is None:
        return value
    if isinstance(value, float):
        if math.isnan(value) and nan_as_null:
            return None
        if not math.isfinite(value):
            raise ValueError(f"JSON holds finite numbers only, but {where} is {value}")
        return value
    if isinstance(value, Mapping):
        return {key: _plain(v, nan_as_null, f"{where}[{key!r}]") for key, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v, nan_as_null, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if hasattr(value, "tolist") and type(value).__module__ == "numpy":  # numpy scalars and arrays
        return _plain(value.tolist(), nan_as_null, where)
    raise TypeError(f"JSON holds numbers, strings, lists and objects, but {where} is a {type(value).__name__}")

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


def dump_json(data: Any, *, nan_as_null: bool = False, nonfinite_as_null: bool = False, indent: int | None = None,
              sort_keys: bool = False) -> str:
    """``data`` as strict JSON text, converted by `plain` (numpy values as numbers and lists, paths as text; a
    non-finite number as null only where the caller says so, else a ValueError naming where it lies)."""
    return json.dumps(plain(data, nan_as_null=nan_as_null, nonfinite_as_null=nonfinite_as_null), indent=indent,
                      sort_keys=sort_keys, allow_nan=False)


def plain(value: Any, *, nan_as_null: bool = False, nonfinite_as_null: bool = False, where: str = "data") -> Any:
    """``value`` as JSON's types, converted explicitly: numpy scalars and arrays as numbers and lists, paths as
    text, tuples as lists, a key JSON has no form for as its text. A NaN becomes null where the caller says it
    stands for "not known" (``nan_as_null``), every non-finite number where an undefined figure is null
    (``nonfinite_as_null``: the CLI's ``--format json``, e.g. Kendall tau of a constant); any other non-finite
    number is a bug of the caller, so it is a ValueError naming where in ``value`` it lies (``where``: the name
    of ``value``), never a file other programs cannot read. Anything else is a TypeError: a value hwnas does not
    know how to write is a bug to fix, not a string to print."""
    if isinstance(value, (str, bool)) or value is None:
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        if not math.isfinite(value) and (nonfinite_as_null or (nan_as_null and math.isnan(value))):
            return None
        if not math.isfinite(value):
            raise ValueError(f"JSON holds finite numbers only, but {where} is {value}")
        return float(value)
    options = {"nan_as_null": nan_as_null, "nonfinite_as_null": nonfinite_as_null}
    if isinstance(value, Mapping):
        return {_key(key): plain(v, **options, where=f"{where}[{key!r}]") for key, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v, **options, where=f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if hasattr(value, "tolist") and type(value).__module__ == "numpy":  # numpy scalars and arrays
        return plain(value.tolist(), **options, where=where)
    raise TypeError(f"JSON holds numbers, strings, lists and objects, but {where} is a {type(value).__name__}: "
                    f"{value!r:.80}")


def _key(key: Any) -> Any:
    """A mapping's key as JSON writes it: text, a number or a flag as it is (json writes them), anything else as
    its text (a numpy integer as its number's)."""
    if isinstance(key, (str, int, float, bool)) or key is None:
        return key
    if hasattr(key, "item") and type(key).__module__ == "numpy":
        return _key(key.item())
    return str(key)

"""Writing files so that a kill at any moment loses nothing already written.

`write_atomic` replaces a whole file (temporary file, fsync, rename): a reader sees the old file or the new
one, never half of either. `append_line` adds one line and forces it to disk before returning, which is
how tables and logs grow record by record.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import IO


def write_atomic(path: str | os.PathLike, data: str | bytes | Callable[[Path], None]) -> Path:
    """Write ``data`` (text, bytes, or a function that writes the file at the path it is given) to ``path``
    through a temporary file beside it that is flushed to disk and then renamed over ``path``."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    if callable(data):
        data(tmp)
    else:
        with open(tmp, "wb" if isinstance(data, bytes) else "w") as f:
            f.write(data)
    with open(tmp, "rb+") as f:
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return path


def append_line(file: IO[str], line: str) -> None:
    """Append ``line`` and a newline to an open text file and force both to disk."""
    file.write(line + "\n")
    file.flush()
    os.fsync(file.fileno())

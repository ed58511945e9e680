"""Appending measured records to a table file as they finish, one whole line at a time (fsync per record).

A record is appended with one ``write`` of its whole line on a descriptor opened for appending; when that
fails (a full disk, a quota, a file system gone read-only), the file is cut back to the records before it, so a
table never ends in a torn line, and the failure is one `hwnas.errors.OutputError` that says how many records
are kept and that running the same command again resumes from them.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from hwnas.errors import OutputError
from hwnas.files import append_whole, dump_json


class TableWriter:
    """Appends records to a table file as they are measured (see the module docstring)."""

    def __init__(self, path: str | Path, header: dict | None = None):
        self.path = Path(path)
        if header is not None:
            line = dump_json(header)  # a header that is not JSON must not cost the file it would replace
            self._fd = self._open(os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND)
            self.records = 0
            self._write(line, "its header")
        else:
            lines = self._drop_truncated_tail()
            self._fd = self._open(os.O_WRONLY | os.O_APPEND)
            self.records = max(lines - 1, 0)  # the header is no record

    def _open(self, flags: int) -> int:
        try:
            return os.open(self.path, flags, 0o644)
        except OSError as exc:
            raise OutputError(f"{self.path} could not be written ({exc.strerror or exc})") from None

    def _drop_truncated_tail(self) -> int:
        """Cut a last line a kill left without its newline; the number of whole lines kept."""
        data = self.path.read_bytes()
        if data and not data.endswith(b"\n"):
            with open(self.path, "r+b") as f:
                f.truncate(data.rfind(b"\n") + 1)
        return data.count(b"\n")

    def _write(self, line: str, what: str) -> None:
        try:
            append_whole(self._fd, (line + "\n").encode(), self.path)
        except OutputError as error:
            kept = (f"its {self.records} records are kept: free space and run the same command again to resume"
                    if self.records else "it holds no records yet")
            raise OutputError(f"{self.path}: {what} could not be written ({error.reason}); {kept}", error.reason) \
                from None

    def append(self, record: Any) -> None:
        self._write(dump_json(record.to_json()), f"record {self.records + 1}")
        self.records += 1

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> "TableWriter":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

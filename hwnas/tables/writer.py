"""Appending measured records to a table file as they finish (flush + fsync per record)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hwnas.files import append_line, dump_json


class TableWriter:
    """Appends records to a table file as they are measured (flush + fsync per record)."""

    def __init__(self, path: str | Path, header: dict | None = None):
        self.path = Path(path)
        if header is not None:
            line = dump_json(header)  # a header that is not JSON must not cost the file it would replace
            with open(self.path, "w") as f:
                append_line(f, line)
        else:
            self._drop_truncated_tail()
        self._file = open(self.path, "a")

    def _drop_truncated_tail(self) -> None:
        data = self.path.read_bytes()
        if data and not data.endswith(b"\n"):
            with open(self.path, "wb") as f:
                f.write(data[: data.rfind(b"\n") + 1])

    def append(self, record: Any) -> None:
        append_line(self._file, dump_json(record.to_json()))

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> "TableWriter":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

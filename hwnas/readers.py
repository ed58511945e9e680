"""Reading the files hwnas reads (tables, search directories, run directories, architecture JSON), one way.

Every reader takes the path, ``what`` the file is meant to be (the start of every message: "a lookup
table", "a search's config.json") and the `HwnasError` subclass to raise, and answers bad input with one
line that names the file and, where there is one, the line: a missing file, a directory, bytes that are
not UTF-8 text (a binary file, a pickle), JSON that is not strict (NaN, Infinity, a name twice in one
object), a value of the wrong type, a CSV row with too few or too many fields or a cell of the wrong kind.
A truncated last line (a kill while a line was being appended) is dropped with a warning instead, in
JSON Lines and in CSV alike. `hwnas.files` is the writing side.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
import stat
import types
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, get_args, get_origin

from hwnas.errors import HwnasError, quoted

if TYPE_CHECKING:
    import pandas as pd

ErrorType = type[HwnasError]


#: the largest file hwnas reads as text (a table of every block of a space is well under a megabyte)
MAX_TEXT_BYTES = 256 * 2**20


def file_kind(mode: int) -> str:
    """What a non-regular file is, in words."""
    return ("a FIFO" if stat.S_ISFIFO(mode) else "a character device" if stat.S_ISCHR(mode) else
            "a block device" if stat.S_ISBLK(mode) else "a socket" if stat.S_ISSOCK(mode) else
            "a directory" if stat.S_ISDIR(mode) else "not a regular file")


def require_dir(path: str | Path, what: str, error: ErrorType = HwnasError) -> Path:
    """``path`` as an existing directory, or one line saying what it is instead (missing, a symlink that leads
    nowhere, a file, a FIFO or a device)."""
    path = Path(path)
    if path.is_symlink() and not path.exists():
        raise error(f"{what}, but {path} is a symlink that leads nowhere (a loop or a missing target)")
    if not path.exists():
        raise error(f"{what}, but {path} does not exist")
    mode = path.stat().st_mode
    if not stat.S_ISDIR(mode):
        raise error(f"{what}, but {path} is {'a file' if stat.S_ISREG(mode) else file_kind(mode)}")
    return path


def read_text(path: str | Path, what: str, error: ErrorType = HwnasError) -> str:
    """The file at ``path`` as UTF-8 text (a leading byte-order mark dropped). A missing file, a symlink loop,
    a directory, a FIFO or device (which would block or never end) and a file over MAX_TEXT_BYTES are refused
    before anything is read."""
    path = Path(path)
    if path.is_symlink() and not path.exists():
        raise error(f"{what} must exist, but {path} is a symlink that leads nowhere (a loop or a missing target)")
    if not path.exists():
        raise error(f"{what} must exist, but {path} does not")
    if path.is_dir():
        raise error(f"{what} must be a file, but {path} is a directory")
    mode = path.stat().st_mode
    if not stat.S_ISREG(mode):
        raise error(f"{what} must be a regular file, but {path} is {file_kind(mode)}")
    size = path.stat().st_size
    if size > MAX_TEXT_BYTES:
        raise error(f"{what} must be at most {MAX_TEXT_BYTES // 2**20} MiB, but {path} holds {size / 2**20:.0f} MiB")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise error(f"{what} must be readable, but {path} is not ({exc.strerror or exc})") from None
    nul = data.find(b"\0")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line, column = _position(data, exc.start)
        raise error(f"{what} must be UTF-8 text, but {path} is not: line {line} column {column} holds the byte "
                    f"0x{data[exc.start]:02x}{' (it is a binary file)' if nul >= 0 else ''}") from None
    if nul >= 0:
        line, column = _position(data, nul)
        raise error(f"{what} must be text, but {path} is a binary file: line {line} column {column} holds a NUL "
                    "byte") from None
    return text.removeprefix("\ufeff")


def _position(data: bytes | str, offset: int) -> tuple[int, int]:
    """(line, column), both from 1, of ``offset`` in ``data``."""
    newline = b"\n" if isinstance(data, bytes) else "\n"
    return data.count(newline, 0, offset) + 1, offset - (data.rfind(newline, 0, offset) + 1) + 1


# ----- JSON --------------------------------------------------------------------------------------------------
class _NotStrict(ValueError):
    """Raised inside the JSON parser at NaN / Infinity or a name repeated in one object."""


def _refuse_constant(name: str) -> Any:
    raise _NotStrict(name)


def _refuse_repeats(pairs: list[tuple[str, Any]]) -> dict:
    data = dict(pairs)
    if len(data) != len(pairs):
        raise _NotStrict("a repeated name")
    return data


#: string literals (with a following ':' when they are names), brackets, and the constants strict JSON refuses
_TOKENS = re.compile(r'"(?:[^"\\]|\\.)*"(?:\s*:)?|[{}\[\]]|-?Infinity|NaN')


def _offence(text: str) -> tuple[int, str]:
    """Offset and description of the first non-finite constant or repeated name in ``text`` (strict JSON up to
    there, so a scan that only tells strings, names and brackets apart finds it)."""
    stack: list[set[str] | None] = []
    for match in _TOKENS.finditer(text):
        token = match.group()
        if token in ("{", "["):
            stack.append(set() if token == "{" else None)
        elif token in ("}", "]"):
            if stack:
                stack.pop()
        elif token.startswith('"'):
            if token.endswith(":") and stack and stack[-1] is not None:
                name = json.loads(token[:-1].rstrip())
                if name in stack[-1]:
                    return match.start(), f"the name {quoted(name)} a second time in one object"
                stack[-1].add(name)
        else:
            return match.start(), f"{token}, which JSON does not allow (numbers must be finite)"
    return 0, "a value strict JSON does not allow"


def parse_json(text: str, source: str | Path, what: str, error: ErrorType = HwnasError, *,
               first_line: int = 1) -> Any:
    """``text`` parsed as strict JSON; errors name ``source`` and the line (counted from ``first_line``)."""
    try:
        return json.loads(text, parse_constant=_refuse_constant, object_pairs_hook=_refuse_repeats)
    except _NotStrict:
        offset, found = _offence(text)
        line, column = _position(text, offset)
        raise error(f"{what} must be strict JSON, but {source} line {line + first_line - 1} column {column} "
                    f"holds {found}") from None
    except json.JSONDecodeError as exc:
        raise error(f"{what} must be JSON, but {source} line {exc.lineno + first_line - 1} is not JSON ({exc.msg} "
                    f"at column {exc.colno})") from None
    except RecursionError:
        raise error(f"{what} must be JSON nested fewer than a thousand levels deep, but {source} is not") from None


def read_json(path: str | Path, what: str, error: ErrorType = HwnasError, *,
              fields: Mapping[str, Any] | None = None) -> Any:
    """A strict JSON file; with ``fields`` it must be an object holding those names with those types (see
    `check_fields`)."""
    text = read_text(path, what, error)
    data = parse_json(text, path, what, error)
    if fields is not None:
        check_fields(data, fields, path, what, error, text=text)
    return data


def _type_name(kind: Any) -> str:
    if get_origin(kind) is list:
        (item,) = get_args(kind)
        return f"a list of {_type_name(item).removeprefix('a ').removeprefix('an ')}s"
    if get_origin(kind) in (types.UnionType,) or isinstance(kind, tuple):
        return " or ".join(_type_name(k) for k in (get_args(kind) if not isinstance(kind, tuple) else kind))
    return {dict: "an object", list: "a list", str: "a string", float: "a number", int: "a whole number",
            bool: "true or false", type(None): "null"}[kind]


def _is(value: Any, kind: Any) -> bool:
    if get_origin(kind) is list:
        (item,) = get_args(kind)
        return isinstance(value, list) and all(_is(v, item) for v in value)
    if get_origin(kind) is types.UnionType or isinstance(kind, tuple):
        return any(_is(value, k) for k in (get_args(kind) if not isinstance(kind, tuple) else kind))
    if kind is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, kind)


def check_fields(data: Any, fields: Mapping[str, Any], source: str | Path, what: str, error: ErrorType = HwnasError,
                 *, text: str | None = None, line: int | None = None) -> None:
    """``data`` must be an object holding every name of ``fields`` with a value of its type: ``dict``, ``list``,
    ``str``, ``float`` (any number), ``int``, ``bool``, ``list[str]`` and the like, or a union (``str | None``).
    Messages name the line of the name when ``text`` (the whole document) or ``line`` is given."""
    where = f"{source}" if line is None else f"{source} line {line}"
    if not isinstance(data, dict):
        raise error(f"{what} must be a JSON object, but {where} holds {_json_kind(data)} {_shown(data)}")
    for name, kind in fields.items():
        if name not in data:
            raise error(f"{what} must hold {name!r}, but {where} lacks it")
        if not _is(data[name], kind):
            at = where if text is None else f"{source} line {_name_line(text, name)}"
            raise error(f"{what} must hold {name!r} as {_type_name(kind)}, but {at} has {_shown(data[name])}")


def _json_kind(value: Any) -> str:
    for kind in (bool, dict, list, str, int, float, type(None)):
        if _is(value, kind):
            return _type_name(kind)
    return type(value).__name__


def _name_line(text: str, name: str) -> int:
    """The line on which the outermost object of ``text`` names ``name``."""
    depth = 0
    for match in _TOKENS.finditer(text):
        token = match.group()
        depth += 1 if token in ("{", "[") else -1 if token in ("}", "]") else 0
        if depth == 1 and token.endswith(":") and json.loads(token[:-1].rstrip()) == name:
            return _position(text, match.start())[0]
    return 1


def _shown(value: Any) -> str:
    shown = json.dumps(value)
    return shown if len(shown) <= 60 else shown[:57] + "..."


def parse_json_lines(text: str, source: str | Path, what: str, error: ErrorType = HwnasError, *,
                     hint: str = "") -> list[tuple[int, Any]]:
    """(line number, value) of every non-blank line of JSON Lines ``text``. A last line that is not JSON
    (and is not the only one) was cut by a kill while it was written: it is dropped with a warning that
    names the file and line (``hint`` appended); any other line that is not strict JSON is an error."""
    lines = text.splitlines()
    numbered = [(number, line) for number, line in enumerate(lines, start=1) if line.strip()]
    values = []
    for position, (number, line) in enumerate(numbered):
        try:
            value = json.loads(line, parse_constant=_refuse_constant, object_pairs_hook=_refuse_repeats)
        except _NotStrict:
            parse_json(line, source, what, error, first_line=number)  # raises, naming the line and column
        except (json.JSONDecodeError, RecursionError) as exc:
            if position == len(numbered) - 1 and position > 0:
                warnings.warn(f"{source}: dropped a truncated last line ({number}){hint}", stacklevel=3)
                continue
            reason = (f"{exc.msg} at column {exc.colno}" if isinstance(exc, json.JSONDecodeError)
                      else "nested a thousand levels deep")
            raise error(f"every line of {what} must be JSON, but {source} line {number} is not JSON "
                        f"({reason})") from None
        values.append((number, value))
    return values


def read_json_lines(path: str | Path, what: str, error: ErrorType = HwnasError, *,
                    hint: str = "") -> list[tuple[int, Any]]:
    """`parse_json_lines` of the file at ``path``."""
    return parse_json_lines(read_text(path, what, error), path, what, error, hint=hint)


# ----- CSV ---------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Column:
    """What a CSV column holds: ``kind`` "text" (non-empty), "number" (finite, within ``low``..``high``), "float"
    (any number, nan and inf included), "int" or "bool" (True / False); ``empty`` allows an empty cell (NaN or
    None once read)."""

    kind: str = "text"
    low: float | None = None
    high: float | None = None
    empty: bool = False

    def describe(self) -> str:
        words = {"text": "non-empty text", "number": "finite number", "float": "number", "int": "whole number",
                 "bool": "True or False"}[self.kind]
        if self.low is not None and self.high is not None:
            words += f" in [{self.low:g}, {self.high:g}]"
        elif self.low is not None:
            words += f" >= {self.low:g}"
        return ("an " if words[0] in "aeiou" else "a ") + words + (" or nothing" if self.empty else "")

    def accepts(self, cell: str) -> bool:
        cell = cell.strip()
        if cell == "" or (self.kind == "number" and cell.lower() == "nan"):
            return self.empty
        if self.kind == "text":
            return True
        if self.kind == "bool":
            return cell in ("True", "False")
        try:
            value = int(cell) if self.kind == "int" else float(cell)
        except ValueError:
            return False
        return self.kind == "float" or (math.isfinite(value) and (self.low is None or value >= self.low)
                and (self.high is None or value <= self.high))


def read_csv(path: str | Path, what: str, columns: Mapping[str, str | Column], error: ErrorType = HwnasError, *,
             none_message: str | None = None) -> pd.DataFrame:
    """A CSV file with a header line, as pandas reads it, after checking it: every name of ``columns`` among
    the header's (a kind such as "number" or a `Column` for each), every row with as many fields as the
    header, every cell of those columns of its kind. A last row with too few fields was cut by a kill: it
    is dropped with a warning. ``none_message``: the error when the file has a header but no row."""
    import pandas as pd

    text = read_text(path, what, error)
    reader = csv.reader(io.StringIO(text))
    rows: list[tuple[int, list[str]]] = []
    end = 0
    try:
        for row in reader:
            start, end = end + 1, reader.line_num
            if row and any(cell.strip() for cell in row):
                rows.append((start, row))
    except csv.Error as exc:
        raise error(f"{what} must be a CSV file, but {path} line {reader.line_num} is not ({exc})") from None
    if not rows:
        raise error(f"{what} must start with a header line, but {path} is empty")
    (_, header), data = rows[0], rows[1:]
    repeated = sorted({name for name in header if header.count(name) > 1})
    if repeated:
        raise error(f"{what} must name each column once, but {path} line {rows[0][0]} names "
                    f"{', '.join(map(repr, repeated))} more than once")
    lines = text.splitlines(keepends=True)
    if data and len(data[-1][1]) < len(header):
        number = data[-1][0]
        warnings.warn(f"{path}: dropped a truncated last line ({number}): it has {len(data[-1][1])} of "
                      f"{len(header)} fields", stacklevel=2)
        data = data[:-1]
        text = "".join(lines[:number - 1])
    if not data and none_message is not None:
        raise error(none_message)
    missing = [name for name in columns if name not in header]
    if missing:
        raise error(f"{what} must have the columns {', '.join(columns)}, but {path} lacks "
                    f"{', '.join(missing)}")
    specs = {header.index(name): (name, Column(spec) if isinstance(spec, str) else spec)
             for name, spec in columns.items()}
    for number, row in data:
        if len(row) != len(header):
            raise error(f"every row of {what} must have the {len(header)} fields of its header, but {path} line "
                        f"{number} has {len(row)}")
        for index, (name, spec) in specs.items():
            if not spec.accepts(row[index]):
                raise error(f"{what} must have {spec.describe()} in column {name!r}, but {path} line {number} "
                            f"has {quoted(row[index])}")
    return pd.read_csv(io.StringIO(text))

"""Where hwnas writes: output paths checked before any work, and one writer per output at a time.

`check_output_file` / `check_output_dir` refuse, in one line, an empty path, a file where a directory must
be, a directory where a file must be, a path below a file and one whose nearest existing directory this process
cannot write to, before anything is measured or written.
`OutputLock` holds an exclusive lock on an output (a table, a run directory, a search directory) for the
life of its writer: a second writer started beside it gets a one-line error naming the first's process.
The lock is the operating system's (``flock``), so it is released when the writer exits, however it exits,
even killed; the lock file beside the output is removed when the writer finishes.
"""

from __future__ import annotations

import os
from pathlib import Path

from hwnas.errors import ConfigError, HwnasError
from hwnas.readers import file_kind

try:
    import fcntl
except ImportError:  # pragma: no cover - no flock on this platform: outputs are not locked
    fcntl = None  # type: ignore[assignment]


class LockedError(HwnasError):
    """Another process is writing the same output."""


def _check_parents(path: Path, what: str) -> None:
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise ConfigError(f"{what} must be in a directory, but {parent} is a file")
            if not os.access(parent, os.W_OK | os.X_OK):
                raise ConfigError(f"{what} must be in a directory this process can write to, but {parent} is not "
                                  f"writable (read-only file system or permissions)")
            return


def _check_existing(path: Path, what: str, directory: bool) -> None:
    """Refuse a symlink that leads nowhere and an existing path that is neither a regular file nor a directory
    (a FIFO, a device node, a socket): hwnas never replaces one."""
    if path.is_symlink() and not path.exists():
        raise ConfigError(f"{what} must be a path hwnas can write, but {path} is a symlink that leads nowhere (a "
                          f"loop or a missing target)")
    if path.exists() and not path.is_file() and not path.is_dir():
        raise ConfigError(f"{what} must be a regular {'directory' if directory else 'file'} or a new path, but "
                          f"{path} is {file_kind(path.stat().st_mode)}, which hwnas never replaces")


def check_output_file(path: str | os.PathLike, what: str) -> Path:
    """``path`` as an output file: named, not a directory, not below a file, not a FIFO, device or symlink loop."""
    if not str(path).strip():
        raise ConfigError(f"{what} must be named, but got an empty path")
    path = Path(path)
    _check_existing(path, what, directory=False)
    if path.is_dir():
        raise ConfigError(f"{what} must be a file, but {path} is a directory")
    _check_parents(path, what)
    return path


#: what each command's output directory holds at its top (a file that names it), to tell them apart
KINDS = {"run": ("checkpoint.pt", "log.csv"), "search": ("sweep.json", "candidates.csv", "best.json"),
         "ranking": ("rank.json", "selection.json"), "report": ("report.json", "plan.json")}
_KIND_NAMES = {"run": "a training run", "search": "a search", "ranking": "a ranking (hwnas rank)",
               "report": "a report (hwnas report)"}


def holds(path: Path) -> list[str]:
    """The kinds of results (KINDS) the directory ``path`` holds at its top; a search is also told by its
    config.json, whose kind is ``hwnas-search``."""
    found = [kind for kind, names in KINDS.items() if any((path / name).is_file() for name in names)]
    if "search" not in found and (path / "config.json").is_file():
        try:
            if '"hwnas-search"' in (path / "config.json").read_text()[:4096]:
                found.append("search")
        except (OSError, UnicodeDecodeError):
            pass
    return found


def check_output_dir(path: str | os.PathLike, what: str, kind: str | None = None) -> Path:
    """``path`` as an output directory: named, not a file, not below a file, not a symlink loop; with ``kind``
    (one of KINDS), not a directory that holds another command's results (they would mix in one folder)."""
    if not str(path).strip():
        raise ConfigError(f"{what} must be named, but got an empty path")
    path = Path(path)
    _check_existing(path, what, directory=True)
    if kind is not None and path.is_dir():
        other = [k for k in holds(path) if k != kind]
        if other:
            raise ConfigError(f"{what} must be a folder of its own, but {path} holds {_KIND_NAMES[other[0]]}; "
                              f"choose another folder (the two commands' files would mix)")
    if path.exists() and not path.is_dir():
        raise ConfigError(f"{what} must be a directory, but {path} is a file")
    _check_parents(path, what)
    return path


def check_apart(path: str | os.PathLike, inputs, what: str, inside: bool = True) -> None:
    """Refuse an output ``path`` that is one of ``inputs`` (the files and directories a command reads; None
    skipped) or (with ``inside``) lies inside one of them: writing it would replace or mix with what is read."""
    target = Path(path).resolve()
    for given in inputs:
        if given is None:
            continue
        try:
            source = Path(given).resolve()
        except (OSError, RuntimeError):  # a symlink loop: its own reader refuses it in one line
            continue
        if target == source or (inside and source in target.parents):
            raise ConfigError(f"{what} must be apart from the command's inputs, but {path} is "
                              f"{'' if target == source else 'inside '}{given}, which it reads; choose another path")


def check_kind_file(path: Path, kind: str, what: str) -> None:
    """An existing output file ``path`` is replaced only where it is a file of ``kind`` (a JSON object's
    ``"kind"``, read from its start): never another command's file given by mistake."""
    if not path.is_file():
        return
    try:
        with open(path, encoding="utf-8") as file:
            head = file.read(4096)
    except (OSError, UnicodeDecodeError):
        head = ""
    if not head.lstrip().startswith("{") or f'"kind": "{kind}"' not in head.replace('":"', '": "'):
        raise ConfigError(f"{what} must be a new path or a {kind} file, but {path} exists and is not a {kind} file, "
                          f"so it is not replaced; choose another path")


class OutputLock:
    """An exclusive lock on the output whose lock file is ``lock_path``, held from `acquire` (or entering a
    ``with`` block) to `release`; ``what`` names the output in the error a second writer gets."""

    def __init__(self, lock_path: str | os.PathLike, what: str):
        self.lock_path, self.what = Path(lock_path), what
        self._fd: int | None = None
        self._made: list[Path] = []

    def acquire(self) -> OutputLock:
        if fcntl is None:
            return self
        parent = self.lock_path.parent
        # the folders made here for the lock are removed with it when nothing else was put in them (a command
        # that failed before writing leaves no empty output folder behind)
        self._made = [p for p in (parent, *parent.parents) if not p.exists()]
        parent.mkdir(parents=True, exist_ok=True)
        while True:
            fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.read(fd, 64).decode(errors="replace").strip() or "?"
                os.close(fd)
                raise LockedError(f"{self.what} is being written by process {holder}; wait for it to finish or stop "
                                  f"it (lock {self.lock_path})") from None
            try:  # the file may have been removed by a writer that just finished: lock the one that is there
                same = os.fstat(fd).st_ino == os.stat(self.lock_path).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is None:
            return
        try:
            self.lock_path.unlink()
        except FileNotFoundError:
            pass
        os.close(self._fd)  # closing the descriptor releases the lock
        self._fd = None
        for folder in self._made:  # deepest first; one that holds anything stays, and so do those above it
            try:
                folder.rmdir()
            except OSError:
                break

    def __enter__(self) -> OutputLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def file_lock(path: str | os.PathLike, what: str) -> OutputLock:
    """The lock of an output file: ``FILE.lock`` beside it."""
    path = Path(path)
    return OutputLock(path.with_name(path.name + ".lock"), f"{what} {path}")


def dir_lock(path: str | os.PathLike, what: str) -> OutputLock:
    """The lock of an output directory: ``DIR/.hwnas.lock``."""
    return OutputLock(Path(path) / ".hwnas.lock", f"{what} {path}")

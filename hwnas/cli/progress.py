"""The CLI's side of `hwnas.progress`: library progress updates drawn as click progress bars on a terminal,
and as a line per tenth of a task (and at its end) in logs."""

from __future__ import annotations

import sys
from typing import IO

import click

from hwnas.progress import Progress


class ProgressDisplay:
    """A `hwnas.progress.ProgressCallback` that draws on stderr. A new ``task`` closes the bar of the last
    one and opens its own; `close` (or leaving the ``with`` block) closes the last bar."""

    def __init__(self, file: IO[str] | None = None, *, enabled: bool = True):
        self.file = file or sys.stderr
        self.enabled = enabled
        self.tty = self.file.isatty()
        self.task: str | None = None
        self.bar = None
        self.done = 0
        self.logged = -1

    def __call__(self, p: Progress) -> None:
        if not self.enabled:
            return
        if p.task != self.task:
            self.close()
            self.task, self.done, self.logged = p.task, 0, -1
            if self.tty:
                self.bar = click.progressbar(length=p.total, label=p.task, show_pos=True, show_eta=True,
                                             file=self.file, item_show_func=lambda status: status)
                self.bar.__enter__()
        if self.bar is not None:
            self.bar.update(max(0, p.done - self.done), current_item=p.status or None)
        elif p.done == p.total or p.done - max(self.logged, 0) >= max(1, p.total // 10) or self.logged < 0:
            if p.done != self.logged:
                click.echo(f"{p.task}: {p.done}/{p.total}" + (f"  {p.status}" if p.status else ""), file=self.file)
                self.logged = p.done
        self.done = p.done

    def close(self) -> None:
        if self.bar is not None:
            self.bar.__exit__(None, None, None)
            self.bar = None
        self.task = None

    def __enter__(self) -> ProgressDisplay:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

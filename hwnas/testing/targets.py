"""Conformance suite of kinds of targets (`hwnas.profiler.targets.TARGETS`): the
`hwnas.profiler.session.TargetKind` contract that ``--on`` relies on.

`check_target_kind(cls, good, bad)` checks, for a kind and examples of its strings:

- it is registered under each of its ``schemes`` and has a usage ``syntax``; it has a `Session` in
  `hwnas.profiler.remote.SESSIONS`;
- every ``good`` string parses, through `parse_target` as through ``cls.parse``, into a target of the kind whose
  ``url`` is the expected one, begins with one of its schemes, has no whitespace or control characters, and
  parses again into the same url (a url is what a table header records and what a user passes to ``--on`` to
  measure there again);
- every ``bad`` string is a one-line `hwnas.errors.ConfigError` (never a traceback), with nothing run.

A new kind: subclass `TargetKind`, register it (`register_target`) with its session, and call
`check_target_kind` with its good and bad strings.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from hwnas.errors import ConfigError
from hwnas.profiler.remote import SESSIONS
from hwnas.profiler.session import Session, TargetKind
from hwnas.profiler.targets import TARGETS, parse_target


def check_target_kind(cls: type[TargetKind], good: Mapping[str, str], bad: Iterable[str]) -> None:
    """Every check of this module for ``cls``; ``good`` maps target strings to the url each must parse to."""
    assert cls.schemes and all(TARGETS.get(s) is cls for s in cls.schemes), \
        f"{cls.__name__} must be registered under each of its schemes {cls.schemes}"
    assert cls.syntax, f"{cls.__name__} must say its syntax"
    session = SESSIONS.get(cls)
    assert session is not None and issubclass(session, Session), \
        f"{cls.__name__} must have a Session in hwnas.profiler.remote.SESSIONS, but has {session!r}"
    for text, url in good.items():
        target = parse_target(text)
        assert type(target) is cls and target == cls.parse(text), \
            f"{text!r} must parse into a {cls.__name__}, the same through parse_target and {cls.__name__}.parse"
        assert target.url == url, f"{text!r} must parse to url {url!r}, but gave {target.url!r}"
        assert target.url.split("://", 1)[0] in cls.schemes, f"url {target.url!r} must begin with one of {cls.schemes}"
        assert target.url.isprintable() and not any(c.isspace() for c in target.url), \
            f"url {target.url!r} must hold no whitespace or control characters"
        assert parse_target(target.url).url == target.url, f"url {target.url!r} must parse into itself"
    for text in bad:
        try:
            parse_target(text)
        except ConfigError as error:
            assert "\n" not in str(error), f"the error for {text!r} must be one line, but is {str(error)!r}"
        else:
            raise AssertionError(f"{text!r} must be refused with a ConfigError, but parsed")

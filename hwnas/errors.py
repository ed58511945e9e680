"""Errors raised by hwnas.

Every message states the rule that was broken and the offending value, so that the CLI can print it
as one line (exit code 2) and a notebook user sees the same sentence.
"""

from __future__ import annotations

from collections.abc import Iterable


class HwnasError(Exception):
    """Base class of every error hwnas raises on bad input or an unusable environment."""


class ConfigError(HwnasError, ValueError):
    """An argument or setting has a value outside its allowed range."""


class UnknownNameError(ConfigError, KeyError):
    """A name was looked up in a registry that does not hold it."""

    def __init__(self, kind: str, name: str, known: Iterable[str], plural: str | None = None):
        self.kind, self.name, self.known = kind, name, sorted(known)
        super().__init__(f"unknown {kind} {quoted(name)}; known {plural or kind + 's'}: "
                         f"{', '.join(self.known) or '(none)'}")

    def __str__(self) -> str:  # KeyError would otherwise quote the message
        return self.args[0]


class ArchitectureError(ConfigError):
    """An architecture does not fit its search space."""


class TableError(HwnasError):
    """A lookup table is missing, corrupt, or does not cover what it is asked for."""


class DeviceError(HwnasError):
    """A device backend is unknown or unavailable on this machine."""


class TargetError(HwnasError):
    """A target device cannot be reached, lacks what the measuring process needs, or lost the connection."""


class DataError(HwnasError):
    """A dataset is missing or malformed."""


class CheckpointError(HwnasError):
    """A checkpoint or run directory cannot be used."""


def require(condition: bool, message: str, error: type[HwnasError] = ConfigError) -> None:
    """Raise ``error(message)`` unless ``condition`` holds."""
    if not condition:
        raise error(message)


def require_finite(settings: object) -> None:
    """Refuse a dataclass of settings whose float fields hold an infinity or NaN, naming the first."""
    import dataclasses
    import math

    for field in dataclasses.fields(settings):  # type: ignore[arg-type]
        value = getattr(settings, field.name)
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(f"{field.name} must be a finite number, but got {field.name}={value}")


class OutputError(HwnasError):
    """An output could not be written (a full disk, a read-only file system); what was there before is kept.
    ``reason`` is the system's word for why (``No space left on device``), for callers that say it of another
    output (a table's record, a kit)."""

    def __init__(self, message: str, reason: str | None = None):
        super().__init__(message)
        self.reason = reason


#: the most characters of a value an error message quotes
QUOTE_LIMIT = 100


def quoted(value: object, limit: int = QUOTE_LIMIT) -> str:
    """``repr(value)``, cut to about ``limit`` characters with an ellipsis and its full length when it is longer,
    so that a one-line error stays one readable line whatever the user's file held (a 200 MB field)."""
    if isinstance(value, str) and len(value) > 4 * limit:  # never repr a huge string whole
        shown = repr(value[:limit])
        return f"{shown[:limit]}... ({len(value)} characters)"
    shown = repr(value)
    if len(shown) <= limit:
        return shown
    length = f"{len(value)} characters" if isinstance(value, str) else f"{len(shown)} characters as written"
    return f"{shown[:limit]}... ({length})"

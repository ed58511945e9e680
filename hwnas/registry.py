"""A small name -> object registry, used for search spaces, ops, input profiles, devices and strategies, and the
one way of making an entry from its typed settings.

`Registry.create` is the verb every registry of classes shares (as timm's ``create_model`` or torchvision's
``get_model``): the entry's settings are the fields of a dataclass (the class itself, as a search strategy is,
or its ``Settings``), checked by `typed` against their declared types before the entry exists, so that a
setting of the wrong type or an unknown name is one line that names it, whichever command or notebook asked.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Generic, TypeVar

from hwnas.errors import ConfigError, UnknownNameError

T = TypeVar("T")


def _accepts(kind: Any, value: Any) -> bool:
    origin = typing.get_origin(kind)
    if origin in (typing.Union, types.UnionType):
        return any(_accepts(k, value) for k in typing.get_args(kind))
    if kind is type(None) or kind is None:
        return value is None
    if kind is bool:
        return isinstance(value, bool)
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if kind is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind is str:
        return isinstance(value, str)
    return True  # containers and other types: the dataclass's own checks


def _words(kind: Any) -> str:
    origin = typing.get_origin(kind)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_words(k) for k in typing.get_args(kind))
    return {bool: "true or false", int: "an integer", float: "a number", str: "text",
            type(None): "none"}.get(kind, getattr(kind, "__name__", str(kind)))


def typed(cls: type[T], settings: Mapping[str, Any], what: str) -> T:
    """An instance of the dataclass ``cls`` made from ``settings``: a name that is not one of its fields, or a
    value of another type than the field declares (an integer for a float is fine, a bool for an integer is
    not), is a one-line ConfigError naming ``what``, the setting and the value; ranges are the dataclass's own
    business (its ``__post_init__``)."""
    fields = [f.name for f in dataclasses.fields(cls) if f.init]  # type: ignore[arg-type]
    unknown = sorted(set(settings) - set(fields))
    if unknown:
        raise ConfigError(f"{what} takes settings {', '.join(fields) or '(none)'}, but got {', '.join(unknown)}")
    hints = typing.get_type_hints(cls)
    for name, value in settings.items():
        if name in hints and not _accepts(hints[name], value):
            raise ConfigError(f"{name} must be {_words(hints[name])}, but got {name}={value!r}")
    return cls(**settings)


class Registry(Generic[T]):
    """Maps names to objects. Registering a name twice raises; a miss lists the known names."""

    def __init__(self, kind: str, plural: str | None = None):
        self.kind = kind
        self.plural = plural or (kind[:-1] + "ies" if kind.endswith("y") else kind + "s")
        self._entries: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator form: ``@REGISTRY.register("name")``."""

        def decorator(obj: T) -> T:
            self.add(name, obj)
            return obj

        return decorator

    def add(self, name: str, obj: T) -> None:
        if name in self._entries:
            raise ConfigError(f"{self.kind} names must be unique, but {name!r} is already registered")
        self._entries[name] = obj

    def get(self, name: str) -> T:
        try:
            return self._entries[name]
        except KeyError:
            raise UnknownNameError(self.kind, name, self._entries, self.plural) from None

    def create(self, name: str, /, *args: Any, **settings: Any) -> Any:
        """The entry ``name`` made from its typed ``settings`` (see the module docstring) and the other arguments
        ``args`` it takes (a training strategy's space, run configuration and loaders)."""
        cls: Any = self.get(name)
        if dataclasses.is_dataclass(cls):
            return typed(cls, settings, f"{self.kind} {name!r}")
        return cls(*args, **settings)

    def names(self) -> list[str]:
        return list(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

"""`Architecture`: one op choice per searchable layer, with its compact string and JSON forms."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from hwnas.errors import ArchitectureError, quoted
from hwnas.files import dump_json
from hwnas.readers import check_fields, parse_json, read_text

if TYPE_CHECKING:
    from hwnas.space.space import SearchSpace

#: op names accepted in architecture strings as another name of a canonical op
OP_ALIASES = {"zero": "skip"}


@dataclass(frozen=True)
class Architecture:
    """One op choice per searchable layer. String form: op names joined by '-', e.g. ``k3_e6-skip-k5_e3``."""

    ops: tuple[str, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "ops", tuple(OP_ALIASES.get(op, op) for op in self.ops))

    @classmethod
    def parse(cls, text: str) -> "Architecture":
        text = text.strip()
        if not text or any(not part for part in text.split("-")):
            raise ArchitectureError(f"an architecture string is op names joined by '-', but got {quoted(text)}")
        return cls(tuple(text.split("-")))

    def __str__(self) -> str:
        return "-".join(self.ops)

    def __len__(self) -> int:
        return len(self.ops)

    def to_json(self, space: "SearchSpace | None" = None) -> str:
        data: dict[str, Any] = {"arch": str(self), "ops": list(self.ops)}
        if space is not None:
            data["space"] = space.describe()
        return dump_json(data, indent=2)

    @classmethod
    def from_json(cls, text: str, source: str | os.PathLike | None = None) -> "Architecture":
        """The architecture of an object with an ``"ops"`` list of op names, given as JSON text; ``source`` (the
        file it came from) is named in the ArchitectureError that anything else is."""
        source = "the architecture JSON" if source is None else source
        data = parse_json(text, source, "architecture JSON", ArchitectureError)
        check_fields(data, {"ops": list[str]}, source, "architecture JSON", ArchitectureError, text=text)
        if not data["ops"] or not all(op.strip() for op in data["ops"]):
            raise ArchitectureError(f"architecture JSON must hold 'ops' as a list of op names, but {source} has "
                                    f"{json.dumps(data['ops'])[:80]}")
        return cls(tuple(data["ops"]))

    @classmethod
    def from_file(cls, path: str | os.PathLike) -> "Architecture":
        """The architecture in a JSON file (see `from_json`); one that cannot be read is an ArchitectureError."""
        return cls.from_json(read_text(path, "an architecture JSON file", ArchitectureError), path)


def as_architecture(arch: Architecture | str | Sequence[str]) -> Architecture:
    if isinstance(arch, Architecture):
        return arch
    if isinstance(arch, str):
        return Architecture.parse(arch)
    return Architecture(tuple(arch))

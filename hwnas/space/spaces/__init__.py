"""Search spaces by name: ``get_space("fbnet", "cifar10", width=0.5)``."""

from hwnas.space.spaces import fbnet, proxylessnas, single_path_nas, spos  # noqa: F401  (registration)
from hwnas.space.spaces.base import SPACES, Stage, get_space, make_divisible, space_from_description

__all__ = ["SPACES", "Stage", "get_space", "make_divisible", "space_from_description"]

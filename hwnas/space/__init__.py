"""Search spaces and what they are made of.

`BlockSpec` (one concrete block, the lookup-table key), `Architecture` (one op per searchable layer),
`SearchSpace` (input profile, stem, layers, head), the candidate ops (`ops`), input profiles, MAC and
parameter counting (`cost`), the reference architectures of the literature (`references`) and the
four spaces by name (`spaces`): ``get_space("fbnet", "cifar10", width=0.5)``.
"""

from hwnas.space.architecture import OP_ALIASES, Architecture, as_architecture
from hwnas.space.block import DTYPES, BlockSpec, conv_out
from hwnas.space.cost import Cost, arch_cost, arch_costs, block_cost, count_module
from hwnas.space.ops import OPS, OpSpec
from hwnas.space.profiles import PROFILES, InputProfile, get_profile
from hwnas.space.references import REFERENCES, Reference, find_reference, reference_cost, resolve_arch
from hwnas.space.space import FixedBlock, Layer, SearchSpace
from hwnas.space.spaces import SPACES, get_space, space_from_description

__all__ = [
    "DTYPES", "OPS", "OP_ALIASES", "PROFILES", "REFERENCES", "SPACES", "Architecture", "BlockSpec", "Cost",
    "FixedBlock", "InputProfile", "Layer", "OpSpec", "Reference", "SearchSpace", "arch_cost", "arch_costs",
    "as_architecture", "block_cost", "conv_out", "count_module", "find_reference", "get_profile", "get_space",
    "reference_cost", "resolve_arch", "space_from_description",
]

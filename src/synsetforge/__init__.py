"""synsetforge: hierarchical, crowd-verified image datasets and ILSVRC-style benchmarks."""

from synsetforge.errors import SynsetforgeError

__version__ = "0.1.0"
__all__ = ["SynsetforgeError", "__version__"]

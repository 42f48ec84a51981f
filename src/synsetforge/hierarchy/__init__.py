"""Stage 1, the category hierarchy: WordNet 3.0 nouns or a custom taxonomy, as one :class:`Hierarchy` model.

Typical use::

    from synsetforge.hierarchy import load_hierarchy
    h = load_hierarchy()                 # WordNet 3.0; load_hierarchy("taxo.yaml") for a custom one
    h.get("n02084071").lemmas            # ('dog', 'domestic dog', 'Canis familiaris')
    h.lca("n02084071", "n02121620")      # ('n02075296', 7): carnivore and its height
"""

from synsetforge.hierarchy.classlist import ClassListReport, parse_class_lines, validate_class_list
from synsetforge.hierarchy.expand import expand_queries
from synsetforge.hierarchy.model import Hierarchy, Synset, normalize_lemma
from synsetforge.hierarchy.taxonomy import load_hierarchy, load_taxonomy
from synsetforge.hierarchy.wordnet import ROOT_ID, load_wordnet

__all__ = [
    "ROOT_ID",
    "ClassListReport",
    "Hierarchy",
    "Synset",
    "expand_queries",
    "load_hierarchy",
    "load_taxonomy",
    "load_wordnet",
    "normalize_lemma",
    "parse_class_lines",
    "validate_class_list",
]

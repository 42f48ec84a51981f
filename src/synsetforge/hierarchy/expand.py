"""Search-query expansion for candidate collection (Deng et al. 2009, SPEC section 2).

Two modes, both starting with every synonym of the synset on its own:

* ``gloss`` (the paper's rule, the default): a lemma of any *ancestor* synset is appended to each synonym when
  that lemma occurs in the synset's definition as whole words (case-insensitive). Only the definition counts,
  not WordNet's quoted usage examples (the part of the gloss from the first ``; "``). "whippet" (gloss "small
  slender dog of greyhound type ...") gives ``whippet``, ``whippet dog``, ``whippet greyhound``.
* ``parents``: each synonym joined with each lemma of each direct parent synset.

Order: all synonyms alone (lemma order), then, for each synonym in lemma order, the appended words. In
``gloss`` mode the words follow their first position in the definition (ties: the nearer ancestor first,
breadth-first); in ``parents`` mode parents follow WordNet's order and their lemmas their own order. A word
that the synonym already contains as a whole word is not appended ("hound dog" gets no extra "dog"), and
queries are de-duplicated case-insensitively, keeping the first spelling.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from synsetforge.errors import InputError

if TYPE_CHECKING:
    from synsetforge.hierarchy.model import Hierarchy

MODES = ("gloss", "parents")


def definition(gloss: str) -> str:
    """The definition part of a WordNet gloss, without the quoted usage examples."""
    cut = gloss.find('; "')
    if cut < 0 and gloss.startswith('"'):
        return ""
    return gloss if cut < 0 else gloss[:cut]


def _whole_word(word: str) -> re.Pattern[str]:
    return re.compile(r"(?<!\w)" + re.escape(word) + r"(?!\w)", re.IGNORECASE)


def gloss_words(hierarchy: Hierarchy, synset_id: str) -> list[str]:
    """Ancestor lemmas that occur in the synset's definition, ordered as described in the module docstring."""
    text = definition(hierarchy.get(synset_id).gloss)
    found: dict[str, tuple[int, int, str]] = {}
    for rank, ancestor in enumerate(hierarchy.ancestors(synset_id)):
        for lemma in hierarchy.get(ancestor).lemmas:
            key = lemma.lower()
            if key in found:
                continue
            match = _whole_word(lemma).search(text)
            if match:
                found[key] = (match.start(), rank, lemma)
    return [lemma for _, _, lemma in sorted(found.values())]


def expand_queries(hierarchy: Hierarchy, synset_id: str, mode: str = "gloss") -> list[str]:
    """The search queries for a synset (see the module docstring for the rules and the order)."""
    if mode not in MODES:
        raise InputError(f"unknown expansion mode {mode!r}; use one of: {', '.join(MODES)}")
    synset = hierarchy.get(synset_id)
    if mode == "gloss":
        words = gloss_words(hierarchy, synset_id)
    else:
        words = [lemma for parent in synset.parents for lemma in hierarchy.get(parent).lemmas]
    queries: dict[str, str] = {}
    for synonym in synset.lemmas:
        queries.setdefault(synonym.lower(), synonym)
    for synonym in synset.lemmas:
        for word in words:
            if _whole_word(word).search(synonym):
                continue
            query = f"{synonym} {word}"
            queries.setdefault(query.lower(), query)
    return list(queries.values())

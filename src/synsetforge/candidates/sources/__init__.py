"""Where candidate images come from: the small interface every source implements.

A source only *names* candidates (`CandidateRef`s); fetching, decoding and storing happen elsewhere, so a
source can be tested without network, images or a store. Kept to one method on purpose: anything more
(paging, API keys, reports) is the concern of the concrete source.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any, Protocol, runtime_checkable

from synsetforge.candidates.types import CandidateRef

__all__ = ["Source"]


@runtime_checkable
class Source(Protocol):
    """A search engine, URL list, folder or generator of candidate images.

    `refs` yields up to `per_synset` candidates for each synset id, in the source's own rank order
    (`per_synset=None`: the source's default). `hierarchy` (a `synsetforge.hierarchy.model.Hierarchy` or
    anything with the same `get`) supplies the synonyms and query expansion; sources that need no words
    ignore it. Refs are produced lazily, so callers can stop early.
    """

    name: str

    def refs(
        self, synset_ids: Iterable[str], per_synset: int | None = None, hierarchy: Any = None
    ) -> Iterator[CandidateRef]: ...

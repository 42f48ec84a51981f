"""One in-memory model for WordNet and for custom taxonomies: a DAG of synsets.

Loading stores only flat lists (ids, lemmas, glosses, parent indexes) so that WordNet's 82,115 synsets load in
a fraction of a second; children, depths, heights and the ancestor closure are derived on first use (safe to
share between threads: a race may compute one twice, but nobody sees it half-built). WordNet ships its
children, depths, heights, LCA ranks and descendant counts precomputed (:mod:`synsetforge.hierarchy.derived`),
and numpy is imported only by the methods that compute with it, so that `synsetforge taxonomy show` needs none.

Definitions used throughout (they follow ILSVRC's hierarchical cost):

* **depth**: the length of the *shortest* path up to a root (roots 0); ``max_depth`` is the longest one.
* **height**: the length of the longest path down to a leaf (leaves 0).
* **lowest common ancestor** of ``a`` and ``b``: among the synsets that are ancestors of both (each synset
  counts as its own ancestor), the one with the smallest height; ties go to the larger depth, then the
  smallest id.
  Custom taxonomies may have several roots, so two synsets can have no common ancestor (``None``).
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from synsetforge.errors import InputError, NotFoundError
from synsetforge.hierarchy.suggest import Suggester, did_you_mean

if TYPE_CHECKING:
    from array import array

    import numpy as np
    import numpy.typing as npt

    from synsetforge.hierarchy.derived import Derived

    IntArray = npt.NDArray[np.int64]

_LCA_CHUNK = 32768


@dataclass(frozen=True, slots=True)
class Synset:
    """A category: its id (a WordNet wnid or a custom id), synonyms, definition and direct parents."""

    id: str
    lemmas: tuple[str, ...]
    gloss: str
    parents: tuple[str, ...]

    @property
    def name(self) -> str:
        """The first lemma, the usual display name."""
        return self.lemmas[0] if self.lemmas else self.id

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "lemmas": list(self.lemmas),
            "gloss": self.gloss,
            "parents": list(self.parents),
        }


def normalize_lemma(word: str) -> str:
    """The lookup key of a lemma: case-insensitive, underscores equal spaces, whitespace collapsed."""
    key = word.lower()
    if "_" in key or "  " in key or key != key.strip() or "\t" in key or "\n" in key:
        key = " ".join(key.replace("_", " ").split())
    return key


class Hierarchy:
    """A DAG of synsets with the queries dataset building and ILSVRC scoring need.

    Build one with :func:`synsetforge.hierarchy.load_wordnet`, :func:`synsetforge.hierarchy.load_taxonomy` or
    directly from parallel lists (``parents[i]`` holds indexes into ``ids``; the caller guarantees a DAG;
    ``index``, if given, must map each id to its position; ``derived``, if given, holds the children,
    depths, heights, LCA ranks and descendant counts of exactly this DAG, so they need not be computed).
    """

    def __init__(
        self,
        ids: Sequence[str],
        lemmas: Sequence[tuple[str, ...]],
        glosses: Sequence[str],
        parents: Sequence[tuple[int, ...]],
        *,
        source: str = "custom taxonomy",
        index: dict[str, int] | None = None,
        derived: Derived | None = None,
    ) -> None:
        if not (len(ids) == len(lemmas) == len(glosses) == len(parents)):
            raise ValueError("ids, lemmas, glosses and parents must have the same length")
        self.source = source
        self._ids = list(ids)
        self._lemmas = lemmas
        self._glosses = glosses
        self._parents = parents
        self._index: dict[str, int] = (
            index if index is not None else dict(zip(self._ids, range(len(self._ids)), strict=True))
        )
        if len(self._index) != len(self._ids):
            raise ValueError("synset ids must be unique")
        if derived is not None and len(derived.depth) != len(self._ids):
            raise ValueError("derived values are for a hierarchy of another size")
        self._derived = derived
        self._children: Sequence[tuple[int, ...]] | None = derived.children if derived else None
        self._topo: list[int] | None = None
        self._depth: IntArray | None = None
        self._max_depth: IntArray | None = None
        self._height: IntArray | None = None
        self._rank: IntArray | None = None
        self._by_rank: IntArray | None = None
        self._anc: list[tuple[int, ...]] | None = None
        self._csr: tuple[IntArray, IntArray] | None = None
        self._ndesc: IntArray | None = None
        self._scalar_cache: tuple[list[int], list[int]] | None = None
        self._lemma_index: dict[str, list[int]] | None = None
        self._id_suggester = Suggester(self._ids)
        self._lemma_suggester: Suggester | None = None

    # ------------------------------------------------------------------ basics
    def __len__(self) -> int:
        return len(self._ids)

    def __contains__(self, synset_id: object) -> bool:
        return synset_id in self._index

    def __iter__(self) -> Iterator[str]:
        return iter(self._ids)

    def __repr__(self) -> str:
        return f"<Hierarchy {self.source}: {len(self)} synsets>"

    @property
    def ids(self) -> list[str]:
        """Every synset id, in storage order (offset order for WordNet, file order for custom taxonomies)."""
        return list(self._ids)

    def index_of(self, synset_id: str) -> int:
        """The internal index of an id; an unknown id raises :class:`NotFoundError` with suggestions."""
        try:
            return self._index[synset_id]
        except KeyError:
            raise NotFoundError(self._unknown_id_message(synset_id)) from None

    def indexes_of(self, synset_ids: Iterable[str]) -> IntArray:
        """:meth:`index_of` for many ids, as an int64 array."""
        import numpy as np

        ids = synset_ids if isinstance(synset_ids, Sequence) else list(synset_ids)
        try:
            return np.fromiter(map(self._index.__getitem__, ids), dtype=np.int64, count=len(ids))
        except KeyError:
            for s in ids:
                self.index_of(s)  # raises with suggestions for the first unknown id
            raise

    def _synset(self, i: int) -> Synset:
        ids = self._ids
        return Synset(ids[i], self._lemmas[i], self._glosses[i], tuple(ids[p] for p in self._parents[i]))

    def get(self, synset_id: str) -> Synset:
        """The synset with this id; an unknown id raises :class:`NotFoundError` with did-you-mean."""
        return self._synset(self.index_of(synset_id))

    def name(self, synset_id: str) -> str:
        """The first lemma of a synset."""
        i = self.index_of(synset_id)
        return self._lemmas[i][0] if self._lemmas[i] else synset_id

    def _unknown_id_message(self, synset_id: str) -> str:
        by_lemma = self._lemma_hits(synset_id)[:5]
        if by_lemma:
            hint = did_you_mean([self._ids[i] for i in by_lemma], self._describe)
        else:
            hint = did_you_mean(self._id_suggester.suggest(synset_id), self._describe)
        return f"unknown synset id {synset_id!r} in {self.source}{hint}"

    def _describe(self, synset_id: str) -> str:
        return f"{synset_id} ({self.name(synset_id)})"

    # ------------------------------------------------------------------ lemmas
    def _lemmas_by_key(self) -> dict[str, list[int]]:
        if self._lemma_index is None:
            index: dict[str, list[int]] = {}
            for i, lemmas in enumerate(self._lemmas):
                for lemma in lemmas:
                    hits = index.setdefault(normalize_lemma(lemma), [])
                    if not hits or hits[-1] != i:
                        hits.append(i)
            self._lemma_index = index
        return self._lemma_index

    def _lemma_hits(self, word: str) -> list[int]:
        return self._lemmas_by_key().get(normalize_lemma(word), [])

    def lookup(self, word: str) -> list[Synset]:
        """Synsets having ``word`` as a lemma (case-insensitive, ``_`` equals space), in storage order.

        A miss raises :class:`NotFoundError` naming close lemmas ("did you mean ...?").
        """
        hits = self._lemma_hits(word)
        if not hits:
            raise NotFoundError(f"no synset in {self.source} has the lemma {word!r}{self._lemma_hint(word)}")
        return [self._synset(i) for i in hits]

    def _lemma_hint(self, word: str) -> str:
        if self._lemma_suggester is None:
            self._lemma_suggester = Suggester(sorted(self._lemmas_by_key()))
        close = self._lemma_suggester.suggest(normalize_lemma(word))
        return did_you_mean([repr(self._spelling(key)) for key in close])

    def _spelling(self, key: str) -> str:
        """A lemma as written in the hierarchy for a normalised key ("Canis familiaris", not the key)."""
        for i in self._lemmas_by_key().get(key, ()):
            for lemma in self._lemmas[i]:
                if normalize_lemma(lemma) == key:
                    return lemma
        return key

    def resolve_all(self, id_or_lemma: str) -> list[Synset]:
        """The synset with this id, else every synset with this lemma; neither raises with suggestions."""
        if id_or_lemma in self._index:
            return [self.get(id_or_lemma)]
        hits = self._lemma_hits(id_or_lemma)
        if hits:
            return [self._synset(i) for i in hits]
        suggestions = self._id_suggester.suggest(id_or_lemma, n=3)
        hint = did_you_mean(suggestions, self._describe) if suggestions else self._lemma_hint(id_or_lemma)
        raise NotFoundError(f"{id_or_lemma!r} is neither a synset id nor a lemma in {self.source}{hint}")

    def resolve(self, id_or_lemma: str) -> Synset:
        """The synset with this id, else the only synset with this lemma.

        A lemma shared by several synsets raises :class:`InputError` listing them (ask for an id).
        """
        matches = self.resolve_all(id_or_lemma)
        if len(matches) > 1:
            shown = ", ".join(self._describe(s.id) for s in matches[:8])
            more = f" and {len(matches) - 8} more" if len(matches) > 8 else ""
            raise InputError(f"{id_or_lemma!r} names {len(matches)} synsets; use an id: {shown}{more}")
        return matches[0]

    def search(self, text: str, limit: int = 20) -> list[Synset]:
        """Synsets with a lemma containing ``text``: exact matches, then prefix, then substring matches.

        Within each group shorter lemmas come first, then alphabetical order; each synset appears once.
        """
        query = normalize_lemma(text)
        if not query:
            raise InputError("search text is empty")
        ranked: list[tuple[int, int, str]] = []
        for key in self._lemmas_by_key():
            pos = key.find(query)
            if pos < 0:
                continue
            group = 0 if key == query else (1 if pos == 0 else 2)
            ranked.append((group, len(key), key))
        ranked.sort()
        out: list[Synset] = []
        seen: set[int] = set()
        index = self._lemmas_by_key()
        for _, _, key in ranked:
            for i in index[key]:
                if i not in seen:
                    seen.add(i)
                    out.append(self._synset(i))
                    if len(out) >= limit:
                        return out
        return out

    # ------------------------------------------------------------------ structure
    def _kids(self) -> Sequence[tuple[int, ...]]:
        if self._children is None:
            kids: list[list[int]] = [[] for _ in self._ids]
            for i, ps in enumerate(self._parents):
                for p in ps:
                    kids[p].append(i)
            self._children = [tuple(k) for k in kids]
        return self._children

    def _order(self) -> list[int]:
        """Indexes in topological order (every parent before its children)."""
        if self._topo is None:
            kids = self._kids()
            pending = [len(ps) for ps in self._parents]
            queue = deque(i for i, n in enumerate(pending) if n == 0)
            order: list[int] = []
            while queue:
                i = queue.popleft()
                order.append(i)
                for c in kids[i]:
                    pending[c] -= 1
                    if pending[c] == 0:
                        queue.append(c)
            if len(order) != len(self._ids):
                raise InputError(f"{self.source}: the hierarchy has a cycle")
            self._topo = order
        return self._topo

    def _levels(self) -> None:
        import numpy as np

        n = len(self._ids)
        if self._derived is not None:
            d = self._derived
            self._depth, self._max_depth = _int64(d.depth), _int64(d.max_depth)
            self._height, self._by_rank = _int64(d.height), _int64(d.by_rank)
            rank = np.empty(n, dtype=np.int64)
            rank[self._by_rank] = np.arange(n, dtype=np.int64)
            self._rank = rank
            return
        order = self._order()
        dmin = [0] * n
        dmax = [0] * n
        parents = self._parents
        for i in order:
            ps = parents[i]
            if ps:
                dmin[i] = 1 + min(dmin[p] for p in ps)
                dmax[i] = 1 + max(dmax[p] for p in ps)
        height = [0] * n
        kids = self._kids()
        for i in reversed(order):
            ks = kids[i]
            if ks:
                height[i] = 1 + max(height[c] for c in ks)
        self._depth = np.asarray(dmin, dtype=np.int64)
        self._max_depth = np.asarray(dmax, dtype=np.int64)
        self._height = np.asarray(height, dtype=np.int64)
        ids = self._ids
        by_rank = sorted(range(n), key=lambda i: (height[i], -dmin[i], ids[i]))
        self._by_rank = np.asarray(by_rank, dtype=np.int64)
        rank = np.empty(n, dtype=np.int64)
        rank[self._by_rank] = np.arange(n, dtype=np.int64)
        self._rank = rank

    def _heights(self) -> IntArray:
        if self._height is None:
            self._levels()
        assert self._height is not None
        return self._height

    def _depths(self) -> IntArray:
        if self._depth is None:
            self._levels()
        assert self._depth is not None
        return self._depth

    def _ranks(self) -> tuple[IntArray, IntArray]:
        if self._rank is None:
            self._levels()
        assert self._rank is not None and self._by_rank is not None
        return self._rank, self._by_rank

    def _closure(self) -> list[tuple[int, ...]]:
        """Per synset, the LCA ranks of itself and all its ancestors (each once, unordered)."""
        if self._anc is None:
            rank, _ = self._ranks()
            rank_list = rank.tolist()
            parents = self._parents
            anc: list[tuple[int, ...]] = [()] * len(self._ids)
            for i in self._order():
                ps = parents[i]
                if not ps:
                    anc[i] = (rank_list[i],)
                elif len(ps) == 1:
                    anc[i] = (*anc[ps[0]], rank_list[i])
                else:
                    merged: set[int] = {rank_list[i]}
                    for p in ps:
                        merged.update(anc[p])
                    anc[i] = tuple(merged)
            self._anc = anc
        return self._anc

    def _closure_csr(self) -> tuple[IntArray, IntArray]:
        """The closure as CSR arrays (row pointers, ranks) for the vectorised LCA."""
        import numpy as np

        if self._csr is None:
            anc = self._closure()
            lengths = np.fromiter((len(a) for a in anc), dtype=np.int64, count=len(anc))
            ptr = np.zeros(len(anc) + 1, dtype=np.int64)
            np.cumsum(lengths, out=ptr[1:])
            flat = np.fromiter((r for a in anc for r in a), dtype=np.int64, count=int(ptr[-1]))
            self._csr = (ptr, flat)  # one assignment: other threads see all of it or none
        return self._csr

    @property
    def roots(self) -> list[str]:
        """Synsets without parents (WordNet: only ``n00001740`` entity)."""
        return [self._ids[i] for i, ps in enumerate(self._parents) if not ps]

    def parents(self, synset_id: str) -> list[str]:
        """Direct hypernyms (WordNet order)."""
        return [self._ids[p] for p in self._parents[self.index_of(synset_id)]]

    def children(self, synset_id: str) -> list[str]:
        """Direct hyponyms, in storage order."""
        return [self._ids[c] for c in self._kids()[self.index_of(synset_id)]]

    def is_leaf(self, synset_id: str) -> bool:
        return not self._kids()[self.index_of(synset_id)]

    def leaves(self) -> list[str]:
        """Every synset without children, in storage order."""
        return [self._ids[i] for i, ks in enumerate(self._kids()) if not ks]

    def ancestors(self, synset_id: str) -> list[str]:
        """Every ancestor (not the synset itself), nearest first: breadth-first, parents in their order."""
        return [self._ids[i] for i in self._bfs(self.index_of(synset_id), self._parents)]

    def descendants(self, synset_id: str) -> list[str]:
        """Every descendant (not the synset itself), in storage order."""
        found = self._bfs(self.index_of(synset_id), self._kids())
        return [self._ids[i] for i in sorted(found)]

    def subtree(self, synset_id: str) -> list[str]:
        """The synset followed by all its descendants (storage order)."""
        return [synset_id, *self.descendants(synset_id)]

    @staticmethod
    def _bfs(start: int, edges: Sequence[tuple[int, ...]]) -> list[int]:
        seen = {start}
        out: list[int] = []
        queue = deque([start])
        while queue:
            for j in edges[queue.popleft()]:
                if j not in seen:
                    seen.add(j)
                    out.append(j)
                    queue.append(j)
        return out

    def num_descendants(self, synset_id: str) -> int:
        """How many distinct synsets lie below this one (cheap after the first call)."""
        if self._derived is not None:
            return self._derived.ndesc[self.index_of(synset_id)]
        import numpy as np

        if self._ndesc is None:
            _, flat = self._closure_csr()
            _, by_rank = self._ranks()
            counts = np.bincount(by_rank[flat], minlength=len(self._ids)) - 1
            self._ndesc = counts.astype(np.int64)
        return int(self._ndesc[self.index_of(synset_id)])

    def hypernym_paths(self, synset_id: str) -> list[list[str]]:
        """Every path from the synset up to a root (the synset first, the root last), parents in order."""
        paths: list[list[str]] = []
        ids, parents = self._ids, self._parents

        def walk(i: int, trail: list[str]) -> None:
            trail.append(ids[i])
            if not parents[i]:
                paths.append(list(trail))
            for p in parents[i]:
                walk(p, trail)
            trail.pop()

        walk(self.index_of(synset_id), [])
        return paths

    def depth(self, synset_id: str) -> int:
        """Length of the shortest path to a root (roots 0)."""
        if self._derived is not None:
            return self._derived.depth[self.index_of(synset_id)]
        return int(self._depths()[self.index_of(synset_id)])

    def max_depth(self, synset_id: str) -> int:
        """Length of the longest path to a root."""
        if self._derived is not None:
            return self._derived.max_depth[self.index_of(synset_id)]
        if self._max_depth is None:
            self._levels()
        assert self._max_depth is not None
        return int(self._max_depth[self.index_of(synset_id)])

    def height(self, synset_id: str) -> int:
        """Length of the longest path down to a leaf (leaves 0)."""
        if self._derived is not None:
            return self._derived.height[self.index_of(synset_id)]
        return int(self._heights()[self.index_of(synset_id)])

    @property
    def max_height(self) -> int:
        """The largest height of any synset: ILSVRC-2011 divides the hierarchical cost by it."""
        return int(self._heights().max()) if len(self) else 0

    # ------------------------------------------------------------------ LCA
    def lca(self, a: str, b: str) -> tuple[str, int] | None:
        """The lowest common ancestor of ``a`` and ``b`` and its height (see the module docstring).

        ``None`` when they share no ancestor (only possible in a custom taxonomy with several roots).
        """
        anc = self._closure()
        index = self._index
        ia = index[a] if a in index else self.index_of(a)
        ib = index[b] if b in index else self.index_of(b)
        common = set(anc[ia]).intersection(anc[ib])
        if not common:
            return None
        node = self._rank_lists()[0][min(common)]
        return self._ids[node], self._rank_lists()[1][node]

    def _rank_lists(self) -> tuple[list[int], list[int]]:
        """(node by rank, height by node) as plain lists: indexing them is faster than numpy for scalars."""
        if self._scalar_cache is None:
            _, by_rank = self._ranks()
            self._scalar_cache = (by_rank.tolist(), self._heights().tolist())
        return self._scalar_cache

    def lca_indexes(self, a: npt.ArrayLike, b: npt.ArrayLike) -> tuple[IntArray, IntArray]:
        """Vectorised LCA on internal indexes: (LCA index, LCA height), both ``-1`` without a common ancestor.

        The ancestor rows of each pair, keyed by ``pair * n + rank``, are sorted together; a key present twice
        is a common ancestor, and the first one per pair has the lowest rank, i.e. is the LCA.
        """
        import numpy as np

        ai = np.asarray(a, dtype=np.int64).ravel()
        bi = np.asarray(b, dtype=np.int64).ravel()
        if ai.shape != bi.shape:
            raise InputError(f"lca_batch: {ai.size} ids on one side but {bi.size} on the other")
        n = len(self._ids)
        for side in (ai, bi):
            if side.size and (side.min() < 0 or side.max() >= n):
                raise InputError("lca_batch: synset index out of range")
        ptr, flat = self._closure_csr()
        _, by_rank = self._ranks()
        heights = self._heights()
        out_node = np.full(ai.size, -1, dtype=np.int64)
        for start in range(0, ai.size, _LCA_CHUNK):
            ca, cb = ai[start : start + _LCA_CHUNK], bi[start : start + _LCA_CHUNK]
            pair = np.arange(ca.size, dtype=np.int64)
            keys = np.concatenate([_gather(ptr, flat, ca, pair, n), _gather(ptr, flat, cb, pair, n)])
            keys.sort()
            common = keys[1:][keys[1:] == keys[:-1]]
            if common.size == 0:
                continue
            owner = common // n
            first = np.ones(common.size, dtype=bool)
            first[1:] = owner[1:] != owner[:-1]
            out_node[start + owner[first]] = by_rank[common[first] % n]
        out_height = np.where(out_node >= 0, heights[np.maximum(out_node, 0)], -1)
        return out_node, out_height

    def lca_batch(self, a_ids: Sequence[str], b_ids: Sequence[str]) -> tuple[list[str | None], IntArray]:
        """:meth:`lca` for many pairs: (LCA ids, heights); ``None`` / ``-1`` without a common ancestor."""
        nodes, heights = self.lca_indexes(self.indexes_of(a_ids), self.indexes_of(b_ids))
        ids = self._ids
        return [ids[i] if i >= 0 else None for i in nodes.tolist()], heights

    def hierarchical_cost_matrix(self, class_ids: Sequence[str]) -> IntArray:
        """ILSVRC-2010's class x class cost: the height of the pair's LCA, 0 on the diagonal.

        Pairs without a common ancestor (custom taxonomies with several roots) cost ``max_height + 1``, more
        than any real LCA. Divide by :attr:`max_height` for the 2011 normalised variant.
        """
        import numpy as np

        idx = self.indexes_of(class_ids)
        k = idx.size
        ii, jj = np.triu_indices(k, 1)
        _, heights = self.lca_indexes(idx[ii], idx[jj])
        heights = np.where(heights < 0, self.max_height + 1, heights)
        matrix = np.zeros((k, k), dtype=np.int64)
        matrix[ii, jj] = heights
        matrix[jj, ii] = heights
        return matrix

    # ------------------------------------------------------------------ class sets
    def select(
        self,
        subtree: str | None = None,
        *,
        leaves: bool = True,
        max_n: int | None = None,
        seed: int = 0,
        non_overlapping: bool = False,
    ) -> list[str]:
        """Synsets of a subtree (the whole hierarchy when ``subtree`` is None), in storage order.

        ``leaves`` keeps only leaves; ``non_overlapping`` drops ancestors of other chosen synsets; ``max_n``
        draws a random sample of that size with ``random.Random(seed)``, then restores storage order, so the
        result depends only on the arguments.
        """
        if max_n is not None and max_n < 1:
            raise InputError(f"max_n must be at least 1, got {max_n}")
        if subtree is None:
            pool = list(range(len(self._ids)))
        else:
            root = self.index_of(subtree)
            pool = sorted([root, *self._bfs(root, self._kids())])
        if leaves:
            kids = self._kids()
            pool = [i for i in pool if not kids[i]]
        chosen = [self._ids[i] for i in pool]
        if non_overlapping:
            chosen = self.non_overlapping(chosen)
        if max_n is not None and len(chosen) > max_n:
            picked = set(random.Random(seed).sample(range(len(chosen)), max_n))
            chosen = [s for k, s in enumerate(chosen) if k in picked]
        return chosen

    def overlapping_pairs(self, synset_ids: Iterable[str]) -> list[tuple[str, str]]:
        """Every (ancestor, descendant) pair among the given ids (ids repeated count once), sorted."""
        chosen = dict.fromkeys(synset_ids)
        rank, _ = self._ranks()
        by_rank_in_set = {int(rank[self.index_of(s)]): s for s in chosen}
        anc = self._closure()
        pairs: list[tuple[str, str]] = []
        for s in chosen:
            own = int(rank[self._index[s]])
            for r in anc[self._index[s]]:
                if r != own and r in by_rank_in_set:
                    pairs.append((by_rank_in_set[r], s))
        return sorted(pairs)

    def non_overlapping(self, synset_ids: Iterable[str]) -> list[str]:
        """The ids minus any that is an ancestor of another one (ILSVRC's rule for its 1,000 classes).

        Keeps the input order and drops repeated ids.
        """
        chosen = list(dict.fromkeys(synset_ids))
        ancestors = {a for a, _ in self.overlapping_pairs(chosen)}
        return [s for s in chosen if s not in ancestors]

    # ------------------------------------------------------------------ queries
    def expand(self, synset_id: str, mode: str = "gloss") -> list[str]:
        """Search queries for a synset (see :func:`synsetforge.hierarchy.expand.expand_queries`)."""
        from synsetforge.hierarchy.expand import expand_queries

        return expand_queries(self, synset_id, mode)


def _int64(values: array[int]) -> IntArray:
    """A precomputed int32 array as the int64 numpy array the rest of the model works with."""
    import numpy as np

    return np.frombuffer(values, dtype=np.int32).astype(np.int64)


def _gather(ptr: IntArray, flat: IntArray, nodes: IntArray, pair: IntArray, n: int) -> IntArray:
    """The closure rows of ``nodes`` concatenated, each entry keyed as ``pair * n + rank``."""
    import numpy as np

    starts = ptr[nodes]
    lengths = ptr[nodes + 1] - starts
    total = int(lengths.sum())
    row_start = np.repeat(np.cumsum(lengths) - lengths, lengths)
    positions = np.repeat(starts, lengths) + (np.arange(total, dtype=np.int64) - row_start)
    return np.repeat(pair, lengths) * n + flat[positions]

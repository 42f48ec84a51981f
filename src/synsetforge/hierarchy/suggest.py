"""Did-you-mean suggestions that stay fast on WordNet's 82k ids and 146k lemmas.

Running ``difflib`` over every name costs about a second, so candidates are narrowed first: every string one
edit away that exists (found by set look-ups), plus a fuzzy match over the names that share the first
character and have a similar length (over all names when there are at most a few thousand).
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable, Mapping, Sequence


def edits1(word: str, alphabet: Iterable[str]) -> set[str]:
    """All strings one deletion, transposition, substitution or insertion away from ``word``."""
    letters = "".join(sorted(set(alphabet)))
    splits = [(word[:i], word[i:]) for i in range(len(word) + 1)]
    deletes = {a + b[1:] for a, b in splits if b}
    transposes = {a + b[1] + b[0] + b[2:] for a, b in splits if len(b) > 1}
    replaces = {a + c + b[1:] for a, b in splits if b for c in letters}
    inserts = {a + c + b for a, b in splits for c in letters}
    return (deletes | transposes | replaces | inserts) - {word}


class Suggester:
    """Close matches for a query among a fixed set of keys (built lazily, once)."""

    def __init__(self, keys: Sequence[str], *, small: int = 5000) -> None:
        self._keys = keys
        self._small = small
        self._set: set[str] | None = None
        self._alphabet = ""
        self._buckets: Mapping[str, list[str]] | None = None

    def _prepare(self) -> None:
        self._set = set(self._keys)
        self._alphabet = "".join(sorted({c for k in self._keys for c in k}))
        buckets: dict[str, list[str]] = {}
        for key in self._keys:
            buckets.setdefault(key[:1], []).append(key)
        self._buckets = buckets

    def suggest(self, query: str, n: int = 5, cutoff: float = 0.75) -> list[str]:
        """Up to ``n`` keys close to ``query``, the closest first (deterministic)."""
        if self._set is None:
            self._prepare()
        assert self._set is not None and self._buckets is not None
        exact = edits1(query, self._alphabet) & self._set
        if len(self._keys) <= self._small:
            pool: Iterable[str] = self._keys
        else:
            pool = [k for k in self._buckets.get(query[:1], ()) if abs(len(k) - len(query)) <= 2]
        return _rank(query, exact, pool, n, cutoff)


def _rank(query: str, exact: set[str], pool: Iterable[str], n: int, cutoff: float) -> list[str]:
    """One-edit neighbours plus pool members similar enough (difflib ratio), ranked by edit distance,
    then by length difference, then by similarity."""
    matcher = difflib.SequenceMatcher(b=query)
    scored: list[tuple[int, int, float, str]] = []
    for cand in exact.union(pool):
        matcher.set_seq1(cand)
        if cand in exact or (matcher.real_quick_ratio() >= cutoff and matcher.quick_ratio() >= cutoff):
            ratio = matcher.ratio()
            if cand in exact or ratio >= cutoff:
                scored.append((edit_distance(query, cand), abs(len(cand) - len(query)), -ratio, cand))
    scored.sort()
    return [item[-1] for item in scored[:n]]


def edit_distance(a: str, b: str) -> int:
    """Optimal-string-alignment distance: insertions, deletions, substitutions and adjacent swaps cost 1."""
    prev2: list[int] = []
    prev = list(range(len(b) + 1))
    for i in range(1, len(a) + 1):
        cur = [i] + [0] * len(b)
        for j in range(1, len(b) + 1):
            cost = 0 if a[i - 1] == b[j - 1] else 1
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost)
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                cur[j] = min(cur[j], prev2[j - 2] + 1)
        prev2, prev = prev, cur
    return prev[len(b)]


def did_you_mean(items: Sequence[str], describe: Callable[[str], str] | None = None) -> str:
    """``"; did you mean a, b or c?"`` (empty when there is nothing to suggest)."""
    if not items:
        return ""
    shown = [describe(i) if describe else i for i in items]
    text = shown[0] if len(shown) == 1 else ", ".join(shown[:-1]) + " or " + shown[-1]
    return f"; did you mean {text}?"

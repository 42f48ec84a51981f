"""`candidates stats`: what collection achieved, per source and per domain, from the store alone."""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field

from sqlalchemy import func, select

from synsetforge.store import schema
from synsetforge.store.project import Project

FINISHED_OK = ("stored", "duplicate")


@dataclass
class Tally:
    """Candidate counts by status, and reject/failure reasons."""

    statuses: Counter[str] = field(default_factory=Counter)
    reasons: Counter[str] = field(default_factory=Counter)

    @property
    def total(self) -> int:
        return sum(self.statuses.values())

    @property
    def attempted(self) -> int:
        return self.total - self.statuses["pending"]

    @property
    def success_rate(self) -> float | None:
        """Share of attempted candidates that yielded a valid image (stored or duplicate)."""
        if not self.attempted:
            return None
        return sum(self.statuses[s] for s in FINISHED_OK) / self.attempted


@dataclass
class CandidateStats:
    by_source: dict[str, Tally]
    by_domain: dict[str, Tally]
    by_synset: dict[str, Tally]


def candidate_stats(project: Project) -> CandidateStats:
    c, src = schema.Candidate, schema.Source
    by_source: dict[str, Tally] = defaultdict(Tally)
    by_domain: dict[str, Tally] = defaultdict(Tally)
    by_synset: dict[str, Tally] = defaultdict(Tally)
    with project.session() as s:
        rows = s.execute(
            select(src.name, c.domain, c.synset_id, c.status, c.reject_reason, func.count())
            .join(src, src.id == c.source_id)
            .group_by(src.name, c.domain, c.synset_id, c.status, c.reject_reason)
        ).all()
    for source, domain, synset, status, reason, n in rows:
        for tally in (by_source[source], by_domain[domain or "-"], by_synset[synset]):
            tally.statuses[status] += n
            if reason:
                tally.reasons[f"{status}:{reason}"] += n
    return CandidateStats(dict(by_source), dict(by_domain), dict(by_synset))

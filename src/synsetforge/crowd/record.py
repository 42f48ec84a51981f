"""Which method and settings produced the project's current decisions, recorded in the `meta` table.

Why: `candidates.decision` is written by two things -- live serving (dynamic consensus or a fixed majority,
re-deciding images as votes come) and `crowd aggregate --write` (a batch recomputation) -- and a release,
the admin dashboard and `crowd status` must say which one made the decisions they show. The record is two
`meta` rows: ``aggregation.method`` (the method's name, which releases copy) and ``aggregation.params``
(JSON: the method's settings, who wrote it -- ``crowd aggregate`` or ``live serving`` -- when, and the
record it replaced, so decisions mixed from a batch run and later live updates say so).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from synsetforge.crowd.settings import CrowdSettings
from synsetforge.store import schema

METHOD_KEY = "aggregation.method"
PARAMS_KEY = "aggregation.params"
BY_AGGREGATE = "crowd aggregate"
BY_LIVE = "live serving"

CONSENSUS_KEYS = (  # the settings a dynamic-consensus decision depends on
    "threshold",
    "reject_threshold",
    "initial_votes",
    "initial_fraction",
    "initial_min",
    "initial_each",
    "initial_max",
    "max_votes",
    "min_votes",
    "prior_strength",
    "calibration",
    "calibration_min_gold",
)
_BLOCKED = ("blocked_policy", "blocked_weight")
DAWID_SKENE = {"max_iter": 100, "tol": 1e-5, "accept_at": 0.5}
"""The `DawidSkene` estimator's defaults `crowd aggregate --method dawid-skene` runs with."""


def method_settings(method: str, settings: CrowdSettings) -> dict[str, Any]:
    """The settings that shape `method`'s decisions (dynamic consensus: the consensus and blocking keys)."""
    keys: tuple[str, ...]
    if method == "imagenet":
        keys = CONSENSUS_KEYS + _BLOCKED
    elif method == "fixed":
        keys = ("fixed_votes", *_BLOCKED)
    else:
        keys = _BLOCKED
    out = {k: getattr(settings, k) for k in keys}
    if method == "dawid-skene":
        out.update(DAWID_SKENE)
    if method == "majority":
        out["ties"] = "reject"
    return out


@dataclass(frozen=True)
class DecisionRecord:
    """The method behind the current decisions, its settings, who ran it and when."""

    method: str
    settings: dict[str, Any]
    by: str
    at: str
    previous: DecisionRecord | None = None

    def same_rule(self, other: DecisionRecord | None) -> bool:
        return other is not None and (self.method, self.settings, self.by) == (
            other.method,
            other.settings,
            other.by,
        )

    def rule(self) -> str:
        """The method with its key settings, e.g. ``imagenet (threshold 0.99, reject at 0.01)``."""
        s = self.settings
        if self.method == "imagenet":
            reject = s.get("reject_threshold")
            reject_at = 1 - float(s.get("threshold", 0.99)) if reject is None else reject
            extra = (
                f"threshold {s.get('threshold')}, reject at {reject_at:g}, calibration {s.get('calibration')}"
            )
        elif self.method == "fixed":
            extra = f"{s.get('fixed_votes')} votes, then majority"
        elif self.method == "dawid-skene":
            extra = f"accept at P(good) >= {s.get('accept_at')}"
        elif self.method == "majority":
            extra = "weighted majority, a tie rejects"
        else:
            extra = ""
        return f"{self.method} ({extra})" if extra else self.method

    def describe(self) -> str:
        """One line for pages and commands."""
        line = f"{self.rule()} from {self.by}"
        if self.by == BY_LIVE:
            line += f" since {self.at}"
            if self.previous is not None:
                p = self.previous
                line += f", over earlier decisions by {p.rule()} from {p.by} at {p.at}"
        else:
            line += f" at {self.at}"
        return line

    def as_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "settings": dict(self.settings),
            "by": self.by,
            "at": self.at,
            "previous": self.previous.as_dict() if self.previous is not None else None,
            "description": self.describe(),
        }


def _from(method: str, params: dict[str, Any]) -> DecisionRecord:
    prev = params.get("previous")
    return DecisionRecord(
        method=method,
        settings=dict(params.get("settings") or {}),
        by=str(params.get("by") or "unknown"),
        at=str(params.get("at") or ""),
        previous=_from(str(prev.get("method", "?")), prev) if isinstance(prev, dict) else None,
    )


def _meta_value(key: str) -> Any:
    return select(schema.Meta.value).where(schema.Meta.key == key).scalar_subquery()


# The record's two values as columns, for a statement the caller makes anyway (`tallies.lock_synset`, which
# every decision-changing transaction runs before `record_live`): one round trip fewer inside the write gate
RECORD_COLUMNS = (
    _meta_value(METHOD_KEY).label("record_method"),
    _meta_value(PARAMS_KEY).label("record_params"),
)
_SEEN = "synsetforge.crowd.record"  # session.info key: the values read with RECORD_COLUMNS


def remember_record(session: Session, method: str | None, params: str | None) -> None:
    """Keep what a statement with RECORD_COLUMNS read, for this transaction's next `read_record`."""
    session.info[_SEEN] = (method, params)


def read_record(session: Session) -> DecisionRecord | None:
    """The recorded method behind the current decisions; None when nothing has written decisions yet."""
    seen = session.info.pop(_SEEN, None)
    if seen is not None:
        rows = {k: v for k, v in zip((METHOD_KEY, PARAMS_KEY), seen, strict=True) if v is not None}
    else:
        rows = dict(
            session.execute(
                select(schema.Meta.key, schema.Meta.value).where(
                    schema.Meta.key.in_([METHOD_KEY, PARAMS_KEY])
                )
            ).all()
        )
    if METHOD_KEY not in rows:
        return None
    try:
        params = json.loads(rows.get(PARAMS_KEY) or "{}")
    except ValueError:
        params = {}
    return _from(rows[METHOD_KEY], params if isinstance(params, dict) else {})


def _upsert(session: Session, key: str, value: str) -> None:
    """INSERT ... ON CONFLICT DO UPDATE: two live writers recording at once never collide."""
    table = schema.Meta.__table__
    dialect = session.get_bind().dialect.name
    ins: Any = (postgresql if dialect == "postgresql" else sqlite).insert(table)
    session.execute(
        ins.values(key=key, value=value).on_conflict_do_update(index_elements=["key"], set_={"value": value})
    )


def write_record(session: Session, record: DecisionRecord) -> None:
    session.info.pop(_SEEN, None)  # what was read before is no longer the record
    params = record.as_dict()
    params.pop("method")
    params.pop("description")
    if params["previous"] is not None:
        params["previous"].pop("previous", None)  # one step of history is enough
        params["previous"].pop("description", None)
    _upsert(session, METHOD_KEY, record.method)
    _upsert(session, PARAMS_KEY, json.dumps(params, sort_keys=True))


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def record_aggregate(session: Session, method: str, settings: CrowdSettings) -> DecisionRecord:
    """Record a `crowd aggregate --write` run (it re-decided every candidate: no history kept)."""
    record = DecisionRecord(method, method_settings(method, settings), BY_AGGREGATE, now_iso())
    write_record(session, record)
    return record


def record_live(session: Session, settings: CrowdSettings) -> None:
    """Record live serving as the method, when it just changed decisions and is not recorded already.

    One primary-key read per decision-changing transaction; a write only when the rule differs (after a
    `crowd aggregate --write`, a settings change, or the first live decision).
    """
    current = read_record(session)
    live = DecisionRecord(settings.method, method_settings(settings.method, settings), BY_LIVE, now_iso())
    if live.same_rule(current):
        return
    if current is not None:
        live = DecisionRecord(live.method, live.settings, live.by, live.at, previous=current)
    write_record(session, live)

"""Aggregating crowd votes into per-image decisions: majority vote, Dawid-Skene, dynamic consensus.

All estimators take a votes table of (task, worker, label) rows (pandas DataFrame, dict of arrays or
list of tuples) and return plain result objects (numpy arrays + original keys, `to_dict()` / `to_rows()`).
"""

from synsetforge.crowd.aggregation.dawid_skene import DawidSkene
from synsetforge.crowd.aggregation.dynamic_consensus import (
    ConfidenceTable,
    ConsensusResult,
    Decision,
    DynamicConsensus,
)
from synsetforge.crowd.aggregation.majority import MajorityVote
from synsetforge.crowd.aggregation.results import UNDECIDED, AggregationResult, DawidSkeneResult
from synsetforge.crowd.aggregation.votes import Votes

__all__ = [
    "UNDECIDED",
    "AggregationResult",
    "ConfidenceTable",
    "ConsensusResult",
    "DawidSkene",
    "DawidSkeneResult",
    "Decision",
    "DynamicConsensus",
    "MajorityVote",
    "Votes",
]

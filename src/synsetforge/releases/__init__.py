"""Releases stage: immutable snapshots of the accepted images, splits, quality audits, statistics, exports."""

from synsetforge.releases.exports import FORMATS, ExportResult, export_release
from synsetforge.releases.quality import (
    AuditPlan,
    PrecisionReport,
    create_audit,
    estimate_precision,
    record_audit_answers,
    wilson,
)
from synsetforge.releases.release import (
    Release,
    SynsetDiff,
    check_split_leaks,
    create_release,
    diff_releases,
    get_release,
    list_releases,
)
from synsetforge.releases.report import build_report, render_html, write_report
from synsetforge.releases.splits import SplitSpec

__all__ = [
    "FORMATS",
    "AuditPlan",
    "ExportResult",
    "PrecisionReport",
    "Release",
    "SplitSpec",
    "SynsetDiff",
    "build_report",
    "check_split_leaks",
    "create_audit",
    "create_release",
    "diff_releases",
    "estimate_precision",
    "export_release",
    "get_release",
    "list_releases",
    "record_audit_answers",
    "render_html",
    "wilson",
    "write_report",
]

"""`release report`: the release's statistics, measured precision and split re-check as JSON and HTML.

The HTML page is self-contained (inline SVG charts, inline CSS, no scripts or external assets) and every
piece of user text -- synset words, licence, source and release names -- is HTML-escaped.
"""

from __future__ import annotations

import json
from html import escape
from pathlib import Path
from typing import Any

from synsetforge.releases.quality import estimate_precision
from synsetforge.releases.release import Release, check_split_leaks, get_release
from synsetforge.releases.svg import hbar, intervals, vbar
from synsetforge.store.project import Project

MAX_ROWS = 60


def build_report(project: Project, release: Release | str) -> dict[str, Any]:
    rel = get_release(project, release) if isinstance(release, str) else release
    precision = estimate_precision(project, rel)
    return {
        "release": {
            "name": rel.name,
            "created_at": rel.created_at.isoformat(timespec="seconds"),
            "method": rel.method,
            "params": rel.params,
            "manifest_sha256": rel.manifest_sha256,
        },
        "stats": rel.stats,
        "precision": precision.to_dict(),
        "leaks": check_split_leaks(project, rel),
    }


def _e(x: object) -> str:
    return escape(str(x), quote=True)


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}%"


def _table(header: list[str], rows: list[list[Any]]) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{_e(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def render_html(report: dict[str, Any]) -> str:
    r, st, pr, leaks = report["release"], report["stats"], report["precision"], report["leaks"]
    splits = st.get("splits", {})
    per_synset = sorted(st.get("per_synset", []), key=lambda x: (-x["total"], x["synset"]))
    shown = per_synset[:MAX_ROWS]
    sections: list[str] = []
    sections.append(
        _table(
            ["images", "distinct images", "synsets", "train", "val", "test", "boxes"],
            [
                [
                    st.get("images", 0),
                    st.get("distinct_images", 0),
                    st.get("synsets", 0),
                    splits.get("train", 0),
                    splits.get("val", 0),
                    splits.get("test", 0),
                    st.get("boxes", {}).get("boxes", 0),
                ]
            ],
        )
    )
    sections.append(
        hbar(
            [f"{x['name']} ({x['synset']})" for x in shown],
            [x["total"] for x in shown],
            title=f"Images per synset (largest {len(shown)} of {len(per_synset)})",
        )
    )
    per_depth = st.get("per_depth", [])
    sections.append(
        vbar(
            [str(x["depth"]) for x in per_depth],
            [x["images"] for x in per_depth],
            title="Images per depth (shortest path to the root)",
        )
    )
    hist = st.get("size_histogram", {})
    sections.append(
        vbar(hist.get("labels", []), hist.get("counts", []), title=f"Image sizes ({hist.get('measure')})")
    )
    lic = st.get("licenses", [])[:MAX_ROWS]
    sections.append(hbar([x["license"] for x in lic], [x["images"] for x in lic], title="Licences"))
    src = st.get("sources", [])[:MAX_ROWS]
    sections.append(
        hbar([f"{x['source']} ({x['kind']})" for x in src], [x["images"] for x in src], title="Sources")
    )

    rows = sorted(pr.get("synsets", []), key=lambda x: (x["audited"] == 0, x["synset"]))[:MAX_ROWS]
    if pr.get("audited"):
        sections.append(
            f"<p>Estimated precision <b>{_pct(pr['estimate'])}</b>, 95% interval [{_pct(pr['low'])}, "
            f"{_pct(pr['high'])}] from {pr['audited']} audited images ({_e(pr['method'])}); pooled "
            f"{pr['correct']}/{pr['audited']} = {_pct(pr['pooled'])}; last audit vote {_e(pr['last_vote'])}.</p>"
        )
        sections.append(
            intervals(
                [x["synset"] for x in rows],
                [x["precision"] for x in rows],
                [x["low"] for x in rows],
                [x["high"] for x in rows],
                title="Precision per synset (Wilson 95%)",
                overall=pr.get("estimate"),
            )
        )
    else:
        sections.append("<p>No expert audit yet: precision is not measured.</p>")
    gt = st.get("ground_truth", {})
    if gt.get("items_with_truth"):
        sections.append(
            f"<p>Ground truth known for {gt['items_with_truth']} items: true precision "
            f"{_pct(gt.get('true_precision'))}.</p>"
        )
    sections.append("<h2>Coverage of the hierarchy</h2>")
    cov = st.get("coverage", [])[:MAX_ROWS]
    sections.append(
        _table(
            ["synset", "name", "depth", "subtree synsets", "with images", "images", "coverage"],
            [
                [
                    c["synset"],
                    c["name"],
                    c["depth"],
                    c["subtree_synsets"],
                    c["released_synsets"],
                    c["images"],
                    _pct(c["coverage"]),
                ]
                for c in cov
            ],
        )
    )
    dup = st.get("duplicates", {})
    sections.append("<h2>Duplicates and splits</h2>")
    sections.append(
        _table(
            [
                "pHash distance",
                "clusters",
                "images in clusters",
                "largest",
                "straddling at release",
                "straddling now",
            ],
            [
                [
                    dup.get("phash_distance"),
                    dup.get("clusters"),
                    dup.get("images_in_clusters"),
                    dup.get("largest_cluster"),
                    dup.get("straddling_clusters"),
                    leaks.get("straddling"),
                ]
            ],
        )
    )
    if st.get("dropped_synsets"):
        sections.append("<h2>Dropped synsets (too few images)</h2>")
        sections.append(
            _table(["synset", "images"], [[d["synset"], d["images"]] for d in st["dropped_synsets"]])
        )
    sections.append("<h2>Per synset</h2>")
    sections.append(
        _table(
            ["synset", "name", "depth", "train", "val", "test", "total"],
            [
                [x["synset"], x["name"], x["depth"], x["train"], x["val"], x["test"], x["total"]]
                for x in sorted(per_synset, key=lambda x: x["synset"])
            ],
        )
    )
    css = (
        "body{font-family:system-ui,sans-serif;margin:2em;max-width:60em}table{border-collapse:collapse;"
        "margin:1em 0}td,th{border:1px solid #ccc;padding:2px 6px;text-align:left}svg{display:block;"
        "margin:1.5em 0}"
    )
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>Release {_e(r['name'])}</title><style>{css}</style></head><body>"
        f"<h1>Release {_e(r['name'])}</h1>"
        f"<p>Created {_e(r['created_at'])}; decisions by {_e(r['method'])}; manifest SHA-256 "
        f"<code>{_e(r['manifest_sha256'])}</code>.</p>" + "\n".join(sections) + "</body></html>\n"
    )


def write_report(project: Project, release: Release | str, out: Path | str) -> tuple[Path, Path]:
    """Write ``stats.json`` and ``report.html`` into `out`; returns their paths."""
    report = build_report(project, release)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    json_path, html_path = out / "stats.json", out / "report.html"
    json_path.write_text(
        json.dumps(report, sort_keys=True, indent=1, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    html_path.write_text(render_html(report), encoding="utf-8")
    return json_path, html_path

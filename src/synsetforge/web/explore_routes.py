"""The release explorer: browse a release like ImageNet's explorer (tree with counts, synset pages with a
paged thumbnail grid, image provenance, word search, a release picker).

Include `router` in the app; the project is `app.state.project` (or `app.state.service.project`).

Access: public and read-only, because a release is meant to be browsed. It shows only the *train* and
*val* items of a release (`PUBLIC_SPLITS`): a challenge built on a release hides its test labels, so a test
image, its synset and its bytes are never served here (they read as 404, like an image outside the
release), and counts leave test items out. Candidates that did not make it into the release, individual
votes, workers, gold answers and ground truth are never shown. Every page shows what the release froze
(`releases.frozen`): an image's provenance, vote totals and confidence per released (image, synset) item,
its duplicate cluster, and each synset's lemmas and gloss, as they were when the release was made.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import HTMLResponse, Response
from jinja2 import Environment, FileSystemLoader, StrictUndefined
from sqlalchemy import select

from synsetforge import __version__
from synsetforge.crowd.service import sniff_media_type
from synsetforge.errors import InputError, NotFoundError, SynsetforgeError
from synsetforge.hierarchy.model import Hierarchy
from synsetforge.releases import explore
from synsetforge.releases.frozen import frozen_index
from synsetforge.releases.provenance import public_candidate
from synsetforge.releases.release import Release, get_release, list_releases
from synsetforge.store import schema
from synsetforge.store.project import Project
from synsetforge.web.challenge_routes import ProjectDep
from synsetforge.web.edge import RowId, path_segment

router = APIRouter(include_in_schema=False)  # HTML pages for people, not part of the JSON API

PUBLIC_SPLITS = ("train", "val")
"""Splits the explorer shows; test items stay hidden (a challenge on the release keeps their labels)."""
PER_PAGE = 60
MAX_PER_PAGE = 200
SEARCH_LIMIT = 50
OPEN_DEPTH = 2
"""Tree levels shown expanded when the page opens (deeper ones open with a click on <details>)."""

_FOLDER = Path(__file__).parent / "templates"
_env = Environment(
    loader=FileSystemLoader(_FOLDER),
    autoescape=True,  # glosses, lemmas, authors and queries come from outside: always text
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
_env.filters["conf"] = lambda v: "–" if v is None else f"{v:.3f}"
_env.filters["segment"] = path_segment
_CSS = (_FOLDER / "explore" / "explore.css").read_text(encoding="utf-8")


# -- queries restricted to the public splits -------------------------------------------------------


def public_release(project: Project, name: str) -> Release:
    """The release with its per-synset counts cut down to the public splits (synsets left empty drop out),
    so the store-level `explore.tree` and `explore.search` count only what the explorer shows."""
    rel = get_release(project, name)
    rows = []
    for row in rel.stats.get("per_synset", []):
        shown = sum(int(row.get(k, 0)) for k in PUBLIC_SPLITS)
        if shown:
            rows.append(
                {**{k: row.get(k, 0) for k in PUBLIC_SPLITS}, "synset": row["synset"], "total": shown}
            )
    return dataclasses.replace(rel, stats={**rel.stats, "per_synset": rows})


def _counts(rel: Release) -> dict[str, dict[str, int]]:
    return {row["synset"]: row for row in rel.stats.get("per_synset", [])}


def _hierarchy(project: Project) -> Hierarchy | None:
    try:
        return project.hierarchy
    except SynsetforgeError:
        return None


def nested_tree(project: Project, rel: Release) -> list[dict[str, Any]]:
    """`explore.tree` as nested nodes for a template. A synset reached along a second path of the DAG is
    listed there too, but its subtree is expanded only at its first place (``repeat`` marks the others)."""
    flat = explore.tree(project, rel)
    nodes = flat["nodes"]
    seen: set[str] = set()

    def build(node_id: str, depth: int) -> dict[str, Any]:
        node = nodes[node_id]
        repeat = node_id in seen
        seen.add(node_id)
        kids = [] if repeat else [build(c, depth + 1) for c in node["children"]]
        kids.sort(key=lambda k: (-k["subtree_images"], k["name"]))
        return {**node, "depth": depth, "repeat": repeat, "kids": kids}

    roots = [build(r, 0) for r in flat["roots"]]
    return sorted(roots, key=lambda k: (-k["subtree_images"], k["name"]))


def public_synset_page(
    project: Project, rel: Release, synset: str, *, page: int, per_page: int, split: str | None
) -> dict[str, Any]:
    """A synset's facts and one page of its public items (content-hash order, like `explore.synset_page`)."""
    counts = _counts(rel)
    if synset not in counts:
        raise NotFoundError(f"synset {synset!r} has no public images in release {rel.name!r}")
    if split is not None and split not in PUBLIC_SPLITS:
        raise InputError(f"split must be one of {', '.join(PUBLIC_SPLITS)}")
    if not 1 <= per_page <= MAX_PER_PAGE:
        raise InputError(f"per_page must be in 1..{MAX_PER_PAGE}")
    splits = [split] if split else list(PUBLIC_SPLITS)
    total = int(counts[synset]["total"] if split is None else counts[synset].get(split, 0))
    pages = max(1, -(-total // per_page))
    if page > pages:
        raise NotFoundError(f"page {page} is past the last page ({pages}) of {synset!r}")
    RI = schema.ReleaseItem
    facts = frozen_index(project, rel).synset_facts(synset) or {}
    with project.session() as s:
        rows = s.execute(
            select(RI.image_id, RI.split, RI.confidence)
            .where(RI.release_id == rel.id, RI.synset_id == synset, RI.split.in_(splits))
            .order_by(RI.sha256)
            .offset((page - 1) * per_page)
            .limit(per_page)
        ).all()
    h = _hierarchy(project)
    path: list[dict[str, str]] = []
    if h is not None and synset in h:
        path = [{"id": p, "name": h.name(p)} for p in reversed(h.hypernym_paths(synset)[0])]
    name = h.name(synset) if h is not None and synset in h else synset
    return {
        "synset": synset,
        "name": name,
        "lemmas": list(facts.get("lemmas") or []),
        "gloss": str(facts.get("gloss") or ""),
        "path": path,
        "counts": {k: int(counts[synset].get(k, 0)) for k in PUBLIC_SPLITS},
        "total": total,
        "split": split,
        "page": page,
        "pages": pages,
        "per_page": per_page,
        "images": [{"image_id": r.image_id, "split": r.split, "confidence": r.confidence} for r in rows],
    }


def public_items(project: Project, rel: Release, image_id: int) -> list[tuple[str, str]]:
    """(synset, split) of the image's public items in the release; NotFoundError when it has none."""
    RI = schema.ReleaseItem
    with project.session() as s:
        rows = s.execute(
            select(RI.synset_id, RI.split)
            .where(RI.release_id == rel.id, RI.image_id == image_id, RI.split.in_(PUBLIC_SPLITS))
            .order_by(RI.synset_id)
        ).all()
    if not rows:
        raise NotFoundError(f"image {image_id} is not among the public images of release {rel.name!r}")
    return [(r[0], r[1]) for r in rows]


def public_provenance(project: Project, rel: Release, image_id: int) -> dict[str, Any]:
    """The image as the release froze it (`explore.release_image`), cut down to the public splits: its
    items, the provenance, vote totals and confidence of each, and its public duplicates in the release."""
    prov = explore.release_image(project, rel, image_id, splits=PUBLIC_SPLITS)
    h = _hierarchy(project)
    names = {
        it["synset"]: h.name(it["synset"]) if h is not None and it["synset"] in h else it["synset"]
        for it in prov["items"]
    }
    return {
        "image_id": image_id,
        "sha256": prov["sha256"],
        "width": prov["width"],
        "height": prov["height"],
        "original": prov["original"],
        "items": [
            {"synset": it["synset"], "name": names[it["synset"]], "split": it["split"]}
            for it in prov["items"]
        ],
        # the boxes the release froze, in the stored image's pixels: the overlay's viewBox is that image's
        # size, so the browser scales them with the displayed picture
        "boxes": [
            {
                "synset": it["synset"],
                "label": names[it["synset"]],
                "x": x1,
                "y": y1,
                "w": x2 - x1 + 1,
                "h": y2 - y1 + 1,
            }
            for it in prov["items"]
            for x1, y1, x2, y2 in it["boxes"]
        ],
        # public_candidate: a folder source's files as paths below its root, never absolute server paths
        "candidates": [public_candidate({k: it[k] for k in _CANDIDATE_FIELDS}) for it in prov["items"]],
        "duplicates": prov["duplicates"],
    }


_CANDIDATE_FIELDS = (
    "synset",
    "source",
    "source_kind",
    "query",
    "url",
    "page_url",
    "license",
    "author",
    "confidence",
    "votes_yes",
    "votes_no",
)


# -- pages ----------------------------------------------------------------------------------------


def _page(template: str, **context: Any) -> HTMLResponse:
    html = _env.get_template(f"explore/{template}").render(version=__version__, **context)
    return HTMLResponse(html)


@router.get("/explore/static/explore.css", include_in_schema=False)
def stylesheet() -> Response:
    """Served from here, not inline, so the strict Content-Security-Policy (style-src 'self') applies it."""
    return Response(_CSS, media_type="text/css", headers={"Cache-Control": "public, max-age=3600"})


@router.get("/explore", response_class=HTMLResponse)
def explore_home(project: ProjectDep, release: str | None = None) -> HTMLResponse:
    """The release picker and the tree of the chosen release (the newest one by default)."""
    releases = list_releases(project)
    if not releases:
        return _page("tree.html", releases=[], release=None, roots=[], open_depth=OPEN_DEPTH)
    rel = public_release(project, release or releases[-1].name)
    return _page(
        "tree.html",
        releases=[r.name for r in reversed(releases)],
        release=rel,
        roots=nested_tree(project, rel),
        open_depth=OPEN_DEPTH,
        images=sum(int(r["total"]) for r in rel.stats["per_synset"]),
    )


@router.get("/explore/{release}", response_class=HTMLResponse)
def explore_release(project: ProjectDep, release: str) -> HTMLResponse:
    return explore_home(project, release)


@router.get("/explore/{release}/synset/{synset:path}", response_class=HTMLResponse)
def synset_view(
    project: ProjectDep,
    release: str,
    synset: str,
    page: Annotated[int, Query(ge=1)] = 1,
    per_page: Annotated[int, Query(ge=1, le=MAX_PER_PAGE)] = PER_PAGE,
    split: str | None = None,
) -> HTMLResponse:
    rel = public_release(project, release)
    data = public_synset_page(project, rel, synset, page=page, per_page=per_page, split=split or None)
    return _page("synset.html", release=rel, s=data, splits=PUBLIC_SPLITS, default_per_page=PER_PAGE)


@router.get("/explore/{release}/image/{image_id}", response_class=HTMLResponse)
def image_view(project: ProjectDep, release: str, image_id: RowId) -> HTMLResponse:
    rel = public_release(project, release)
    img = public_provenance(project, rel, image_id)
    return _page("image.html", release=rel, img=img, similar=similar_public(project, rel, image_id))


def similar_public(project: Project, rel: Release, image_id: int, k: int = 8) -> dict[str, Any] | None:
    """The "similar images" strip: nearest public images by the release's newest stored features
    (`synsetforge embed`), each with the classes the release froze for it; None without features."""
    from synsetforge.training.embed import latest_features, similar_images

    found = latest_features(project, rel.id)
    if found is None:
        return None
    index = frozen_index(project, rel)
    h = _hierarchy(project)
    shown = []
    for other, similarity in similar_images(project, rel.id, image_id, k):
        names = [
            h.name(it.synset) if h is not None and it.synset in h else it.synset
            for it in index.items(project.blobs, other)
            if it.split in PUBLIC_SPLITS
        ]
        if names:  # a public image of this release (features are filtered to train/val already)
            shown.append({"image_id": other, "similarity": similarity, "label": ", ".join(names)})
    return {"by": found[0], "arch": found[1], "images": shown}


@router.get("/explore/{release}/blob/{image_id}", include_in_schema=False)
def image_bytes(project: ProjectDep, release: str, image_id: RowId) -> Response:
    """The stored bytes of an image, only when it is a public item of the release."""
    rel = get_release(project, release)
    public_items(project, rel, image_id)
    with project.session() as s:
        key = s.scalar(select(schema.Image.blob).where(schema.Image.id == image_id))
    if key is None:
        raise NotFoundError(f"image {image_id} has no stored bytes")
    data = project.blobs.get(key)
    return Response(
        data, media_type=sniff_media_type(data), headers={"Cache-Control": "public, max-age=86400, immutable"}
    )


@router.get("/explore/{release}/search", response_class=HTMLResponse)
def search_view(
    project: ProjectDep, release: str, q: Annotated[str, Query(max_length=200)] = ""
) -> HTMLResponse:
    rel = public_release(project, release)
    hits = explore.search(project, rel, q, limit=SEARCH_LIMIT) if q.strip() else []
    return _page("search.html", release=rel, q=q, hits=hits)

"""The project store: metadata database (SQLite or PostgreSQL) and content-addressed blobs.

Names are imported on first use (PEP 562), so `synsetforge.store.blobs` can be used without loading the
database layer: collection workers only ever need the blob store.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from synsetforge.store.blobs import BlobStorage, BlobStore, FsspecBlobStore, open_blob_store
    from synsetforge.store.project import Project, ProjectConfig

PROJECT_ENV = "SYNSETFORGE_PROJECT"
"""Environment variable naming the project folder (here, not in `project`, so the CLI reads it for free)."""

__all__ = ["BlobStorage", "BlobStore", "FsspecBlobStore", "Project", "ProjectConfig", "open_blob_store"]


def __getattr__(name: str) -> Any:
    if name in ("BlobStorage", "BlobStore", "FsspecBlobStore", "open_blob_store"):
        from synsetforge.store import blobs

        return getattr(blobs, name)
    if name in ("Project", "ProjectConfig"):
        from synsetforge.store import project

        return getattr(project, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

"""The project store: metadata database (SQLite or PostgreSQL) and content-addressed blobs."""

from synsetforge.store.blobs import BlobStore
from synsetforge.store.project import Project, ProjectConfig

__all__ = ["BlobStore", "Project", "ProjectConfig"]

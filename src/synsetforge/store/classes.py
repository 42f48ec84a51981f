"""Loading an ILSVRC-style class list into a project: validate first, store only a clean list."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select

from synsetforge.errors import InputError
from synsetforge.hierarchy.classlist import ClassListReport, validate_class_list
from synsetforge.store import schema
from synsetforge.store.project import Project


def load_class_list(project: Project, path: Path, *, name: str | None = None) -> tuple[ClassListReport, int]:
    """Validate `path` against the project's hierarchy and store it as a named class list.

    The list's synsets are added to the project. A list with unknown ids, duplicates or an
    ancestor/descendant pair is refused (InputError) and nothing is written.
    """
    report = validate_class_list(project.hierarchy, path)
    if not report.ok:
        raise InputError("; ".join(report.problems()))
    name = name or path.stem
    project.add_synsets(list(report.ids))
    with project.session() as s:
        if s.scalar(select(schema.ClassList.id).where(schema.ClassList.name == name)) is not None:
            raise InputError(f"a class list named {name!r} already exists in this project")
        row = schema.ClassList(name=name, source_file=str(path))
        s.add(row)
        s.flush()
        s.add_all(
            schema.ClassListItem(class_list_id=row.id, position=i, synset_id=sid)
            for i, sid in enumerate(report.ids, start=1)
        )
        return report, row.id


def class_list(project: Project, name: str) -> list[str]:
    """The synset ids of a stored class list, in ILSVRC2012_ID order (position 1 first)."""
    with project.session() as s:
        list_id = s.scalar(select(schema.ClassList.id).where(schema.ClassList.name == name))
        if list_id is None:
            raise InputError(f"no class list named {name!r} in this project")
        return list(
            s.scalars(
                select(schema.ClassListItem.synset_id)
                .where(schema.ClassListItem.class_list_id == list_id)
                .order_by(schema.ClassListItem.position)
            )
        )

"""Custom taxonomies (YAML or CSV) loaded into the same :class:`Hierarchy` model as WordNet.

A synset has an ``id`` (any text without whitespace), optional ``lemmas`` (or a single ``name``; default: the
id with ``_`` turned into spaces), optional ``parents`` (several allowed: a DAG, and several roots are fine)
and an optional ``gloss``. Parents may be defined after their children.

YAML, either a list of entries::

    - id: animal
      name: animal
    - id: dog
      lemmas: [dog, domestic dog]
      parents: [animal, pet]        # a single parent may be written as a plain string
      gloss: a domesticated canine

or a mapping from id to entry (the entry may be empty)::

    animal:
    dog: {lemmas: [dog, domestic dog], parents: animal}

CSV with a header row naming the columns ``id``, ``lemmas`` (or ``name``), ``parents`` and ``gloss`` (only
``id`` is required; any order); several lemmas or parents are separated by ``|``; blank lines and lines
starting with ``#`` are ignored::

    id,lemmas,parents,gloss
    animal,animal,,
    dog,dog|domestic dog,animal|pet,a domesticated canine

Any problem (bad syntax, missing or duplicate id, an id longer than the project database holds (64
characters), a NUL character, undefined parent, cycle, unknown key) raises :class:`InputError` naming the
file and line: ``taxo.yaml:12: parent 'x' of 'y' is not defined``.
"""

from __future__ import annotations

import csv
import io
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from synsetforge.errors import InputError, NotFoundError
from synsetforge.hierarchy.model import Hierarchy
from synsetforge.limits import SYNSET_ID_LENGTH, nul_free

YAML_SUFFIXES = (".yaml", ".yml")
CSV_SUFFIXES = (".csv",)
_KEYS = ("id", "name", "lemmas", "parents", "gloss")
_NULL_TAG = "tag:yaml.org,2002:null"


@dataclass
class Entry:
    """One synset as read from a file, with the line numbers needed for error messages."""

    id: str
    line: int
    lemmas: list[str] = field(default_factory=list)
    parents: list[tuple[str, int]] = field(default_factory=list)
    gloss: str = ""


def load_taxonomy(path: Path | str) -> Hierarchy:
    """Load a custom taxonomy; the format follows the suffix (``.yaml``/``.yml`` or ``.csv``)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in YAML_SUFFIXES + CSV_SUFFIXES:
        raise InputError(
            f"{path}: unknown taxonomy format {suffix or '(no suffix)'!r}; use .yaml, .yml or .csv"
        )
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise NotFoundError(f"{path}: taxonomy file not found") from None
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read the taxonomy file: {exc.strerror}") from None
    entries = parse_yaml(text, str(path)) if suffix in YAML_SUFFIXES else parse_csv(text, str(path))
    return build_hierarchy(entries, str(path))


def load_hierarchy(taxonomy: Path | str | None = None) -> Hierarchy:
    """The custom taxonomy at ``taxonomy`` if given, else WordNet 3.0."""
    if taxonomy is None:
        from synsetforge.hierarchy.wordnet import load_wordnet

        return load_wordnet()
    return load_taxonomy(taxonomy)


# --------------------------------------------------------------------------- YAML
def parse_yaml(text: str, where: str) -> list[Entry]:
    """Entries from YAML text; ``where`` names the file in error messages."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 1
        detail = exc.problem or exc.context or "syntax error"
        if exc.problem and exc.context and exc.context_mark is not None:
            detail += f" ({exc.context} started on line {exc.context_mark.line + 1})"
        raise InputError(f"{where}:{line}: invalid YAML: {detail}") from None
    except yaml.YAMLError as exc:
        raise InputError(f"{where}: invalid YAML: {exc}") from None
    if root is None or (isinstance(root, yaml.ScalarNode) and root.tag == _NULL_TAG):
        raise InputError(f"{where}:1: the taxonomy is empty")
    entries: list[Entry] = []
    if isinstance(root, yaml.SequenceNode):
        for item in root.value:
            if not isinstance(item, yaml.MappingNode):
                raise InputError(f"{where}:{_line(item)}: each entry must be a mapping with an 'id'")
            item_fields = _fields(item, where, allow_id=True)
            if "id" not in item_fields:
                raise InputError(f"{where}:{_line(item)}: entry has no 'id'")
            entries.append(_entry(item_fields, item_fields["id"], where))
    elif isinstance(root, yaml.MappingNode):
        for key, value in root.value:
            sid = _scalar(key, where, "id")
            if isinstance(value, yaml.ScalarNode) and value.tag == _NULL_TAG:
                fields: dict[str, yaml.Node] = {}
            elif isinstance(value, yaml.MappingNode):
                fields = _fields(value, where, allow_id=False)
            else:
                raise InputError(f"{where}:{_line(value)}: the entry of {sid!r} must be a mapping or empty")
            entries.append(_entry(fields, key, where))
    else:
        raise InputError(f"{where}:{_line(root)}: expected a list of entries or a mapping from id to entry")
    if not entries:
        raise InputError(f"{where}:{_line(root)}: the taxonomy is empty")
    return entries


def _line(node: yaml.Node) -> int:
    return int(node.start_mark.line) + 1


def _fields(node: yaml.MappingNode, where: str, *, allow_id: bool) -> dict[str, yaml.Node]:
    fields: dict[str, yaml.Node] = {}
    allowed = _KEYS if allow_id else _KEYS[1:]
    for key_node, value in node.value:
        key = _scalar(key_node, where, "key")
        if key not in allowed:
            raise InputError(
                f"{where}:{_line(key_node)}: unknown key {key!r}; expected one of {', '.join(allowed)}"
            )
        if key in fields:
            raise InputError(f"{where}:{_line(key_node)}: key {key!r} given twice")
        fields[key] = value
    if "name" in fields and "lemmas" in fields:
        raise InputError(f"{where}:{_line(node)}: give either 'name' or 'lemmas', not both")
    return fields


def _scalar(node: yaml.Node, where: str, what: str) -> str:
    if not isinstance(node, yaml.ScalarNode) or node.tag == _NULL_TAG:
        raise InputError(f"{where}:{_line(node)}: {what} must be a plain value")
    return str(node.value).strip()


def _strings(node: yaml.Node, where: str, what: str) -> list[tuple[str, int]]:
    """A scalar or a list of scalars, with their lines; null gives an empty list."""
    if isinstance(node, yaml.ScalarNode):
        return [] if node.tag == _NULL_TAG else [(_scalar(node, where, what), _line(node))]
    if isinstance(node, yaml.SequenceNode):
        return [(_scalar(item, where, what), _line(item)) for item in node.value]
    raise InputError(f"{where}:{_line(node)}: {what} must be a value or a list of values")


def _entry(fields: dict[str, yaml.Node], id_node: yaml.Node, where: str) -> Entry:
    entry = Entry(id=_scalar(id_node, where, "id"), line=_line(id_node))
    if "name" in fields:
        entry.lemmas = [_scalar(fields["name"], where, "name")]
    if "lemmas" in fields:
        entry.lemmas = [value for value, _ in _strings(fields["lemmas"], where, "lemmas")]
    if "parents" in fields:
        entry.parents = _strings(fields["parents"], where, "parents")
    if "gloss" in fields:
        gloss = fields["gloss"]
        entry.gloss = "" if gloss.tag == _NULL_TAG else _scalar(gloss, where, "gloss")
    return entry


# --------------------------------------------------------------------------- CSV
def parse_csv(text: str, where: str) -> list[Entry]:
    """Entries from CSV text with a header row; ``where`` names the file in error messages."""
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    header: list[str] | None = None
    columns: dict[str, int] = {}
    entries: list[Entry] = []
    last_line = 0
    try:
        for row in reader:
            line = last_line + 1
            last_line = reader.line_num
            if not row or all(not cell.strip() for cell in row) or row[0].lstrip().startswith("#"):
                continue
            if header is None:
                header = [cell.strip().lower() for cell in row]
                columns = _csv_columns(header, where, line)
                continue
            if len(row) > len(header):
                raise InputError(f"{where}:{line}: {len(row)} fields but the header has {len(header)}")
            cells = {name: (row[k].strip() if k < len(row) else "") for name, k in columns.items()}
            entry = Entry(id=cells["id"], line=line)
            names = cells.get("lemmas", cells.get("name", ""))
            entry.lemmas = [part.strip() for part in names.split("|") if part.strip()]
            entry.parents = [(p.strip(), line) for p in cells.get("parents", "").split("|") if p.strip()]
            entry.gloss = cells.get("gloss", "")
            entries.append(entry)
    except csv.Error as exc:
        raise InputError(f"{where}:{reader.line_num or 1}: invalid CSV: {exc}") from None
    if header is None:
        raise InputError(
            f"{where}:1: the taxonomy is empty (expected a header row such as 'id,lemmas,parents,gloss')"
        )
    if not entries:
        raise InputError(f"{where}:{last_line}: the taxonomy has a header but no entries")
    return entries


def _csv_columns(header: list[str], where: str, line: int) -> dict[str, int]:
    columns: dict[str, int] = {}
    for k, name in enumerate(header):
        if name not in _KEYS:
            raise InputError(
                f"{where}:{line}: unknown column {name!r}; expected id, lemmas (or name), parents, gloss"
            )
        if name in columns:
            raise InputError(f"{where}:{line}: column {name!r} given twice")
        columns[name] = k
    if "id" not in columns:
        raise InputError(f"{where}:{line}: the header has no 'id' column")
    if "name" in columns and "lemmas" in columns:
        raise InputError(f"{where}:{line}: give either a 'name' or a 'lemmas' column, not both")
    return columns


# --------------------------------------------------------------------------- checks
def build_hierarchy(entries: list[Entry], where: str) -> Hierarchy:
    """Check the entries (ids, parents, cycles) and build the hierarchy, in file order."""
    index: dict[str, int] = {}
    for entry in entries:
        if not entry.id:
            raise InputError(f"{where}:{entry.line}: entry has an empty id")
        if any(ch.isspace() for ch in entry.id):
            raise InputError(f"{where}:{entry.line}: id {entry.id!r} contains whitespace")
        if len(entry.id) > SYNSET_ID_LENGTH:
            raise InputError(
                f"{where}:{entry.line}: id {entry.id[:20]!r}... is {len(entry.id)} characters long; "
                f"a project stores ids of at most {SYNSET_ID_LENGTH}"
            )
        if not all(nul_free(text) for text in (entry.id, entry.gloss, *entry.lemmas)):
            raise InputError(f"{where}:{entry.line}: the entry of {entry.id!r} holds a NUL character")
        if entry.id in index:
            first = entries[index[entry.id]].line
            raise InputError(
                f"{where}:{entry.line}: duplicate id {entry.id!r} (first defined on line {first})"
            )
        index[entry.id] = len(index)
    parents: list[tuple[int, ...]] = []
    for entry in entries:
        own: list[int] = []
        for parent, line in entry.parents:
            if parent not in index:
                raise InputError(f"{where}:{line}: parent {parent!r} of {entry.id!r} is not defined")
            if parent == entry.id:
                raise InputError(f"{where}:{line}: {entry.id!r} is its own parent")
            if index[parent] not in own:
                own.append(index[parent])
        parents.append(tuple(own))
    _check_acyclic(entries, parents, where)
    ids = [e.id for e in entries]
    lemmas = [tuple(dict.fromkeys(e.lemmas)) or (e.id.replace("_", " "),) for e in entries]
    return Hierarchy(ids, lemmas, [e.gloss for e in entries], parents, source=where, index=index)


def _check_acyclic(entries: list[Entry], parents: list[tuple[int, ...]], where: str) -> None:
    children: list[list[int]] = [[] for _ in entries]
    pending = [len(ps) for ps in parents]
    for i, ps in enumerate(parents):
        for p in ps:
            children[p].append(i)
    queue = deque(i for i, n in enumerate(pending) if n == 0)
    done = 0
    while queue:
        i = queue.popleft()
        done += 1
        for c in children[i]:
            pending[c] -= 1
            if pending[c] == 0:
                queue.append(c)
    if done == len(entries):
        return
    # Every unprocessed synset has an unprocessed parent: walking up through them must revisit one.
    start = min(i for i, n in enumerate(pending) if n > 0)
    trail: list[int] = []
    seen: dict[int, int] = {}
    i = start
    while i not in seen:
        seen[i] = len(trail)
        trail.append(i)
        i = next(p for p in parents[i] if pending[p] > 0)
    cycle = trail[seen[i] :]
    first = min(cycle, key=lambda k: entries[k].line)
    at = cycle.index(first)
    ordered = cycle[at:] + cycle[:at] + [first]
    path = " -> ".join(entries[k].id for k in ordered)
    raise InputError(f"{where}:{entries[first].line}: cycle in parents: {path}")

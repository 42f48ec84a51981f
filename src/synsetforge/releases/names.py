"""Names that end up on disk: release names, class folder names, archive member names.

Synset ids come from user taxonomies ("any text without whitespace"), so an id such as ``../../etc`` must
never become a path. Every name written into an export goes through :func:`safe_name` (a folder or file stem
made of ``[A-Za-z0-9_-]`` only) and every archive member through :func:`check_member` (relative, no ``..``),
so path traversal is impossible by construction and checked again at the last step.
"""

from __future__ import annotations

import hashlib
import re

from synsetforge.errors import InputError

RELEASE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$")
_SAFE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,99}$")
_UNSAFE_CHARS = re.compile(r"[^A-Za-z0-9_-]+")


def check_release_name(name: str) -> str:
    """A release name: letters, digits, ``.``, ``_``, ``-``; starts with a letter or digit; at most 200."""
    if not RELEASE_NAME.match(name or ""):
        raise InputError(
            f"bad release name {name!r}: use letters, digits, '.', '_' or '-' (starting with a letter or "
            "digit, at most 200 characters)"
        )
    return name


def safe_name(synset_id: str) -> str:
    """A file-system and archive safe stem for a synset id.

    WordNet ids (``n01440764``) and other plain ids are kept as they are; anything else has its unsafe
    characters replaced by ``_`` and gets a short hash of the original appended, so two different ids
    never map to the same name (``a/b`` -> ``a_b-5f1c2e0a``).
    """
    if _SAFE.match(synset_id):
        return synset_id
    stem = _UNSAFE_CHARS.sub("_", synset_id).strip("_-")[:60] or "synset"
    if not stem[0].isalnum():
        stem = "s" + stem
    digest = hashlib.sha1(synset_id.encode("utf-8")).hexdigest()[:8]
    return f"{stem}-{digest}"


def check_member(name: str) -> str:
    """Refuse an archive member (or relative output path) that could escape its folder."""
    parts = name.split("/")
    if (
        not name
        or name.startswith("/")
        or "\\" in name
        or "\x00" in name
        or any(p in ("", ".", "..") for p in parts)
    ):
        raise InputError(f"refusing unsafe archive member name {name!r}")
    return name

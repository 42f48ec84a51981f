"""Secrets for workers, admins and marketplace links: generated here, stored only as SHA-256 hashes.

Why hashes: a copy of the database (a backup, a shared SQLite file) must not let anyone act as a worker or
an admin. Tokens are 256-bit random, so an unsalted SHA-256 is enough (nothing to brute-force).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

# Completion codes are read aloud / typed by marketplace workers: no 0/O, 1/I/L.
_CODE_ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"


def new_token() -> str:
    """A fresh random token (43 URL-safe characters)."""
    return secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    """Hex SHA-256 of a token: what the database stores and looks up."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def completion_code(length: int = 10) -> str:
    """A code shown to a marketplace worker at the end of a task, to paste into MTurk/Prolific."""
    return "".join(secrets.choice(_CODE_ALPHABET) for _ in range(length))


def csrf_token(secret: str, purpose: str) -> str:
    """A form token bound to the bearer's secret and the form's purpose (e.g. "task:17").

    A page on another site can make the browser post our form with our cookie, but cannot compute this.
    """
    return hmac.new(secret.encode("utf-8"), f"csrf:{purpose}".encode(), hashlib.sha256).hexdigest()[:32]


def csrf_ok(secret: str, purpose: str, given: str | None) -> bool:
    return bool(given) and hmac.compare_digest(csrf_token(secret, purpose), given or "")

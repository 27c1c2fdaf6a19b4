"""Token helpers: random secrets, stored only as sha256 hex, compared in constant time."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Iterable


def new_token() -> str:
    return secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def matches(token: str | None, stored_hash: str | None) -> bool:
    if not token or not stored_hash:
        return False
    return hmac.compare_digest(hash_token(token), stored_hash)


def find(token: str | None, candidates: Iterable[tuple[str, str]]) -> str | None:
    """The key whose hash matches ``token``; every candidate is compared (no early exit on a hit)."""
    found = None
    digest = hash_token(token or "")
    for key, stored in candidates:
        if hmac.compare_digest(digest, stored) and token:
            found = key
    return found

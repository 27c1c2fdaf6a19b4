"""Who is calling: admin bearer tokens, node tokens, deployment tokens.

The secrets are checked by the provisioner (stored hashed, compared in constant time, every refusal
written as an ``auth_failed`` event); this module only takes them out of the ``Authorization`` header.
A missing or malformed header is passed on as "no token", so that it is refused and logged the same way.
"""

from __future__ import annotations

from flask import request

from .state import server_state

#: Longest token worth checking: ours are 43 characters (``secrets.token_urlsafe(32)``).
MAX_TOKEN = 256


def bearer_token() -> str | None:
    """The ``Authorization: Bearer`` secret of this request, or None when there is none (or it is junk)."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or len(token) > MAX_TOKEN:
        return None
    return token


def remote_addr() -> str | None:
    return request.remote_addr


def require_admin() -> str:
    """The actor recorded in events for this admin request (``admin:<token name>``).

    :raises Unauthorized: missing, unknown or revoked token.
    """
    return server_state().provisioner.verify_admin(bearer_token(), remote=remote_addr())


def require_node(name: str) -> str:
    """The actor for a request made with ``name``'s node token (``node:<name>``).

    :raises NotFound: no such node. :raises Unauthorized: wrong or missing token.
    """
    return server_state().provisioner.verify_node_token(name, bearer_token(), remote=remote_addr())

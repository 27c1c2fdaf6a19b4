"""Admin tokens, the audit trail, the images table: the parts of the service that are not node state."""

from __future__ import annotations

import re

from ..errors import BadInput, NotFound, Unauthorized
from ..store import events, tokens
from ..store.events import Event
from ..store.tokens import ApiToken
from . import secrets
from .images import Images

TOKEN_NAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")
MAX_EVENTS = 1000


class Provisioner(Images):
    """The one service layer: the CLI, the Flask blueprints and the Slurm hooks all call this.

    Every node state change is checked against :mod:`cmt_slurm.states` and written with its event in
    one transaction; concurrent server processes are kept apart by conditional updates.
    """

    # -- admin tokens

    def create_token(self, name: str, actor: str = "admin") -> str:
        """A new admin token; the secret is returned once and stored only as its hash.

        :raises BadInput: bad name. :raises Conflict: name taken.
        """
        if not TOKEN_NAME.fullmatch(name):
            raise BadInput(
                f"token name {name!r} is not valid", hint="use [a-z0-9][a-z0-9._-]*, e.g. ops-alice"
            )
        secret = secrets.new_token()
        with self.store.begin() as conn:
            tokens.insert(conn, name, secrets.hash_token(secret), self.clock())
            self._event(conn, actor, "token", detail={"created": name})
        return secret

    def list_tokens(self) -> list[ApiToken]:
        with self.store.read() as conn:
            return tokens.list_all(conn)

    def verify_admin(self, token: str | None, remote: str | None = None) -> str:
        """The actor (``admin:<name>``) whose token ``token`` is.

        :raises Unauthorized: missing, unknown or revoked (logged as an ``auth_failed`` event).
        """
        with self.store.begin() as conn:
            name = secrets.find(token, [(t.name, t.hash) for t in tokens.active(conn)])
            if name is not None:
                tokens.touch(conn, name, self.clock())
                return f"admin:{name}"
        why = "missing admin token" if not token else "admin token not valid (unknown or revoked)"
        self.auth_failure("admin", why, remote=remote)
        raise Unauthorized(
            why, hint="send 'Authorization: Bearer TOKEN' with a token from: cmt token create NAME"
        )

    def auth_failure(
        self,
        kind: str,
        why: str,
        *,
        remote: str | None = None,
        path: str | None = None,
        node: str | None = None,
    ) -> None:
        """Record a refused credential (the HTTP layer calls this for missing or malformed headers)."""
        detail = {k: v for k, v in {"token": kind, "why": why, "remote": remote, "path": path}.items() if v}
        with self.store.begin() as conn:
            self._event(conn, "server", "auth_failed", node=node, detail=detail)

    def revoke_token(self, name: str, actor: str = "admin") -> None:
        """:raises NotFound: no such token, or it is revoked already."""
        with self.store.begin() as conn:
            if not tokens.revoke(conn, name, self.clock()):
                raise NotFound(f"no active token named {name!r}", hint="see the tokens with: cmt token list")
            self._event(conn, actor, "token", detail={"revoked": name})

    # -- audit trail

    def events(
        self,
        node: str | None = None,
        since_id: int | None = None,
        limit: int = 100,
        deployment: int | None = None,
        newest: bool = False,
    ) -> list[Event]:
        """Events in id order: after ``since_id``, else the latest ``limit`` (newest first if ``newest``).

        :raises BadInput: limit outside 1..1000.
        """
        if not 1 <= limit <= MAX_EVENTS:
            raise BadInput(f"limit: {limit} is not between 1 and {MAX_EVENTS}", hint="e.g. --limit 100")
        with self.store.read() as conn:
            found = events.query(conn, node=node, deployment=deployment, since_id=since_id, limit=limit)
        return found[::-1] if newest else found

    def last_event_id(self) -> int:
        with self.store.read() as conn:
            return events.last_id(conn)

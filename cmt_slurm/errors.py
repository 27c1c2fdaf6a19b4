"""One error family for the whole project.

Every error a user can cause carries a message (what is wrong, and where), an optional hint (how to fix
it) and details (machine-readable context). The CLI maps ``exit_code``; the server maps ``http_status``
and ``code`` into ``{"error": {"code", "message", "hint"}}``. Nothing else in the code base decides how an
error is shown.
"""

from __future__ import annotations

from typing import Any, ClassVar


class CmtError(Exception):
    """Base of every error cmt-slurm raises on purpose."""

    code: ClassVar[str] = "internal"
    exit_code: ClassVar[int] = 1
    http_status: ClassVar[int] = 500

    def __init__(self, message: str, *, hint: str | None = None, details: dict[str, Any] | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.details = details or {}

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"code": self.code, "message": self.message, "hint": self.hint}
        if self.details:
            body["details"] = self.details
        return {"error": body}

    def __str__(self) -> str:
        return self.message


class BadInput(CmtError):
    """The input (file, flag, request body, frame, constraint) is malformed."""

    code = "bad_input"
    exit_code = 2
    http_status = 400


class ConfigError(BadInput):
    """The configuration (cmt.toml or CMT_* variables) is invalid."""

    code = "bad_config"


class NoMatch(CmtError):
    """Valid input, but nothing satisfies it (e.g. no image matches a constraint)."""

    code = "no_match"
    exit_code = 3
    http_status = 422


class NotFound(CmtError):
    code = "not_found"
    exit_code = 4
    http_status = 404


class Conflict(CmtError):
    """The request contradicts the current state (illegal transition, name already claimed, ...)."""

    code = "conflict"
    exit_code = 5
    http_status = 409


class Unauthorized(CmtError):
    code = "unauthorized"
    exit_code = 6
    http_status = 401


class Forbidden(CmtError):
    code = "forbidden"
    exit_code = 6
    http_status = 403


class BackendError(CmtError):
    """A part outside our control failed (Slurm command, database, HTTP peer, subprocess)."""

    code = "backend"
    exit_code = 1
    http_status = 502


class PayloadTooLarge(BadInput):
    code = "too_large"
    http_status = 413


class Busy(CmtError):
    """Try again later (admission control, a lock held by another operation)."""

    code = "busy"
    exit_code = 7
    http_status = 503


class DigestMismatch(BadInput):
    """Bytes differ from what their manifest declares (size or sha256): the file or the manifest is wrong."""

    code = "digest_mismatch"


#: Exit codes shown in ``cmt --help``; kept next to the classes that produce them.
EXIT_CODES: dict[int, str] = {
    0: "success",
    1: "internal or backend error (run with --debug for a traceback)",
    2: "bad input (malformed file, flag, constraint, MAC, version, frame or config)",
    3: "nothing matches (e.g. no catalogue image satisfies the constraint)",
    4: "not found (node, image, deployment, token)",
    5: "conflict with the current state (illegal transition, name already claimed)",
    6: "not authorised (missing, wrong or expired token)",
    7: "busy, try again later",
}

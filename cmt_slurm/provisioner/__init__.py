"""The service layer every front end calls: ``Provisioner(store, catalogue, settings, clock)``.

Split by noun: :mod:`.deploy` (targets, boot decisions, reports; the token policy is in its docstring),
:mod:`.registry` (nodes), :mod:`.admin` (tokens, events, images); :mod:`.base` holds the two ways state
changes, each writing its event.
"""

from __future__ import annotations

from .admin import Provisioner
from .results import BootDecision, BootMode, Plan, Registration

__all__ = ["BootDecision", "BootMode", "Plan", "Provisioner", "Registration"]

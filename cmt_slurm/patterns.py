"""Value patterns shared by the renderers that must refuse anything else (iPXE scripts, dnsmasq.conf)."""

from __future__ import annotations

import re

#: A MAC address as we store and render it: lowercase, colon-separated.
MAC = re.compile(r"[0-9a-f]{2}(:[0-9a-f]{2}){5}")
#: One DNS label, as node names are (RFC 1123, lowercase).
HOSTNAME = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?")

"""``GET|HEAD /images/<name>``: a catalogue image's bytes, by the mode in ``settings.image_serving``.

* ``direct``: the server sends the file itself (sendfile, Range, ETag; see :mod:`.images_http`);
* ``x-accel``: the server answers only headers and nginx sends the file (``X-Accel-Redirect`` to the
  ``internal`` location ``x_accel_prefix``, aliased to the catalogue directory; ``server/nginx.conf``);
* ``external``: nodes are handed the manifest URL directly (``Provisioner.image_url``); this route
  redirects there for anyone else. An image whose manifest names a local file is served as in ``direct``
  mode (there is no other URL to hand out), and in every mode an http(s) manifest URL is a redirect.

The name is looked up in the catalogue; it is never joined into a path, so ``../`` and friends cannot
reach anything the catalogue does not list.
"""

from __future__ import annotations

import urllib.parse

from flask import Blueprint, redirect
from werkzeug.wrappers import Response

from ..errors import BackendError, NotFound
from .images_http import serve_file
from .state import server_state
from .validate import NAME

bp = Blueprint("images", __name__)


@bp.route("/images/<path:name>", methods=["GET", "HEAD"])
def image_bytes(name: str) -> Response:
    state = server_state()
    catalogue = state.catalogue()
    image = catalogue.get(name) if NAME.match(name) else None
    if image is None:
        raise NotFound(f"image {name[:80]!r} is not in the catalogue", hint="see GET /api/v1/images")
    mode = state.settings.image_serving
    path = image.local_path
    if path is None:  # the manifest names an http(s) URL: that is where the bytes are
        return redirect(image.resolved_url, code=302)
    if mode == "x-accel":
        try:
            rel = path.resolve().relative_to(state.settings.catalogue_dir.resolve())
        except ValueError:
            raise BackendError(
                f"image {image.name}: {path} is outside the catalogue directory, nginx cannot map it",
                hint="keep image files under catalogue_dir in x-accel mode",
            ) from None
        resp = Response(status=200)
        resp.headers["X-Accel-Redirect"] = state.settings.x_accel_prefix + urllib.parse.quote(rel.as_posix())
        resp.headers["Content-Type"] = "application/octet-stream"
        # nginx computes Range, Content-Length and its own ETag from the file.
        return resp
    resp, sent = serve_file(path, sha256=image.sha256)
    if sent:
        state.metrics.bytes_served.labels(kind="image").inc(sent)
    return resp

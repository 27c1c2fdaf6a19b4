"""``/api/v1/images``: the catalogue as JSON; admins add, remove and re-sync manifests."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify

from ..catalogue.model import is_http_url
from ..errors import BadInput
from .auth import require_admin
from .state import ServerState, server_state
from .validate import json_body, name

bp = Blueprint("images", __name__, url_prefix="/images")


@bp.get("")
def list_images() -> Response:
    images = server_state().catalogue().images
    return jsonify({"images": [i.to_json() for i in images]})


@bp.get("/<image_name>")
def get_image(image_name: str) -> Response:
    image = server_state().provisioner.get_image(name(image_name, "image"))
    return jsonify(image.to_json())


def _check_local_url(state: ServerState, manifest: dict[str, Any]) -> None:
    """A manifest added over HTTP may only point at a file inside the catalogue directory.

    Otherwise an admin token would be enough to publish any file the server can read under /images/.
    """
    url = manifest.get("url")
    if not isinstance(url, str) or is_http_url(url):
        return  # the manifest checks report a missing or malformed url
    root = state.settings.catalogue_dir.resolve()
    try:
        path = (root / url).resolve(strict=True)
    except (OSError, RuntimeError):
        raise BadInput(
            f"url: {url[:200]!r}: no such file in the catalogue directory", hint="copy the image there first"
        ) from None
    if not path.is_relative_to(root) or not path.is_file():
        raise BadInput(
            f"url: {url[:200]!r} is not a file inside the catalogue directory",
            hint="copy the image under catalogue_dir on the server, or give an http(s) URL",
        )


@bp.post("")
def add_image() -> tuple[Response, int]:
    manifest = json_body()
    actor = require_admin()
    state = server_state()
    _check_local_url(state, manifest)
    image = state.provisioner.add_image(manifest, actor)
    state.catalogue()  # our copy follows at once (other workers within seconds)
    return jsonify(image.to_json()), 201


@bp.delete("/<image_name>")
def remove_image(image_name: str) -> tuple[str, int]:
    image_name = name(image_name, "image")
    actor = require_admin()
    server_state().provisioner.remove_image(image_name, actor)
    return "", 204


@bp.post("/sync")
def sync_images() -> Response:
    actor = require_admin()
    state = server_state()
    state.provisioner.reload_catalogue()
    result = state.provisioner.sync_images(actor)
    return jsonify(result.as_dict())

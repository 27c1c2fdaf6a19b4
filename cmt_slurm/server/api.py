"""``/api/v1``: the JSON API, one child blueprint per noun, and its OpenAPI document."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify

from . import api_deployments, api_events, api_images, api_nodes
from .openapi import openapi_document

api = Blueprint("api", __name__, url_prefix="/api/v1")
api.register_blueprint(api_nodes.bp)
api.register_blueprint(api_deployments.bp)
api.register_blueprint(api_images.bp)
api.register_blueprint(api_events.bp)


@api.get("/openapi.json")
def openapi() -> Response:
    return jsonify(openapi_document())

"""The Flask application factory.

``create_app(settings)`` opens the store, loads the catalogue and builds the provisioner (the one service
layer); tests may pass their own ``provisioner`` or ``catalogue``. Blueprints: ``boot`` (iPXE scripts,
live env), ``api`` (``/api/v1``, JSON only), ``images`` (image bytes), ``ui`` (dashboard), ``metrics``.
"""

from __future__ import annotations

import logging

from flask import Flask, Response

from ..catalogue import Catalogue, load_catalogue
from ..config import Settings
from ..provisioner import Provisioner
from ..store import Store
from . import boot, errors, images_bp, ui
from . import metrics as metrics_bp
from .api import api
from .catalogue_files import CatalogueFiles
from .metrics import ServerMetrics, StateCollector
from .state import ServerState

log = logging.getLogger("cmt_slurm.server")

#: Largest request body accepted (the biggest legitimate one, a registration with many disks, is ~10 KiB).
MAX_BODY = 1 << 20


def create_app(
    settings: Settings, provisioner: Provisioner | None = None, catalogue: Catalogue | None = None
) -> Flask:
    """Build the boot server app.

    :raises ConfigError: bad database URL (when ``provisioner`` is not given).
    :raises BadInput: the catalogue directory is missing or has invalid manifests.
    :raises BackendError: the database cannot be reached or migrated.
    """
    if provisioner is None:
        if catalogue is None:
            catalogue = load_catalogue(settings.catalogue_dir)
        provisioner = Provisioner(Store.open(settings.effective_db_url), catalogue, settings)
    prov = provisioner

    def adopt(fresh: Catalogue) -> None:
        # Only the in-memory copy: the images table is synced once at start (wsgi.prepare) and by the
        # admin endpoints; every worker syncing the same change at once would only race.
        log.info("catalogue %s reloaded: %d images", settings.catalogue_dir, len(fresh))
        prov.catalogue = fresh

    files = CatalogueFiles(settings.catalogue_dir, prov.catalogue, adopt)

    app = Flask("cmt_slurm.server", static_folder="static", template_folder="templates")
    app.config.update(MAX_CONTENT_LENGTH=MAX_BODY, MAX_FORM_MEMORY_SIZE=MAX_BODY, TEMPLATES_AUTO_RELOAD=False)

    def current_catalogue() -> Catalogue:
        files.refresh()
        return prov.catalogue

    def node_counts() -> dict[str, int]:
        return {str(state): n for state, n in prov.node_counts().items()}

    def active_by_stage() -> dict[str, int]:
        counts: dict[str, int] = {}
        for dep in prov.active_deployments():
            counts[str(dep.stage)] = counts.get(str(dep.stage), 0) + 1
        return counts

    metrics = ServerMetrics(StateCollector(node_counts, active_by_stage))
    app.extensions["cmt"] = ServerState(
        settings=settings, provisioner=prov, metrics=metrics, catalogue=current_catalogue
    )
    errors.init_app(app)
    app.register_blueprint(boot.bp)
    app.register_blueprint(api)
    app.register_blueprint(images_bp.bp)
    app.register_blueprint(ui.bp)
    app.register_blueprint(metrics_bp.bp)

    @app.before_request
    def _catalogue_current() -> None:
        # Picks up manifests changed by other workers, other servers or `cmt image add` (rate-limited).
        files.refresh()

    @app.after_request
    def _headers(resp: Response) -> Response:
        resp.headers.setdefault("X-Content-Type-Options", "nosniff")
        return resp

    return app

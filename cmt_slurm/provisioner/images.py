"""Catalogue images through the service: read, add a manifest, remove one, copy into the images table.

The catalogue is the manifest directory; the in-memory ``Catalogue`` is reloaded after each change
here, and by any process that misses an image name another process added (``Base._image``).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from typing import Any

from ..catalogue import Image, check_catalogue, dump_manifest, parse_manifest
from ..errors import BadInput, Conflict
from ..store import deployments, images
from ..store.images import ImageRow, SyncResult
from .registry import Registry


class Images(Registry):
    def list_images(self) -> list[Image]:
        return list(self.catalogue.images)

    def get_image(self, name: str) -> Image:
        """:raises NotFound: not in the catalogue."""
        return self._image(name)

    def add_image(self, manifest: Mapping[str, Any], actor: str) -> Image:
        """Write ``manifest`` as ``<catalogue_dir>/<name>.toml`` after checking it and the whole catalogue.

        :raises BadInput: every problem of the manifest, or a cross-file rule it breaks.
        :raises Conflict: an image of that name exists.
        """
        directory = self.catalogue.directory or self.settings.catalogue_dir
        name = manifest.get("name")
        path = directory / f"{name if isinstance(name, str) else 'new'}.toml"
        image, problems = parse_manifest(manifest, "manifest", path)
        if problems or image is None:
            raise BadInput(
                problems[0], hint="fix the manifest and send it again", details={"problems": problems}
            )
        self.reload_catalogue()
        if self.catalogue.get(image.name) is not None:
            raise Conflict(
                f"image {image.name!r} exists already", hint="remove it first, or pick another name"
            )
        catalogue = check_catalogue([*self.catalogue.images, image], directory)
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{image.name}.", suffix=".tmp")
        with os.fdopen(fd, "w") as out:
            out.write(dump_manifest(image))
        os.replace(tmp, path)  # atomic: a concurrent catalogue load sees the old file set or the new one
        self.catalogue = catalogue
        self.sync_images(actor)
        with self.store.begin() as conn:
            self._event(conn, actor, "image", detail={"added": image.name, "manifest": str(path)})
        return image

    def remove_image(self, name: str, actor: str) -> None:
        """Delete the image's manifest (not its bytes).

        :raises NotFound: no such image. :raises Conflict: an active deployment writes it.
        """
        image = self._image(name)
        with self.store.begin() as conn:
            busy = [d.node for d in deployments.list_active(conn) if d.image == name]
        if busy:
            raise Conflict(
                f"image {name!r} is being deployed to {', '.join(busy)}",
                hint="wait for those deployments to end",
            )
        if image.manifest_path is None:
            raise Conflict(f"image {name!r} has no manifest file to remove")
        image.manifest_path.unlink(missing_ok=True)
        self.reload_catalogue()
        self.sync_images(actor)
        with self.store.begin() as conn:
            self._event(conn, actor, "image", detail={"removed": name, "manifest": str(image.manifest_path)})

    def sync_images(self, actor: str = "server") -> SyncResult:
        """Make the images table a copy of the catalogue."""
        rows = [
            ImageRow(
                name=i.name, os=i.os, glibc=str(i.glibc), arch=i.arch, url=i.url, sha256=i.sha256,
                size=i.size, default=i.default, built=i.built, manifest=i.to_json(),
            )
            for i in self.catalogue
        ]  # fmt: skip
        with self.store.begin() as conn:
            result = images.sync(conn, rows, self.clock())
            if result.added or result.updated or result.removed:
                self._event(conn, actor, "images", detail=result.as_dict())
        return result

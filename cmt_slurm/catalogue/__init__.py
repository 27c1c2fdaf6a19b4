"""The image catalogue: manifests on disk, the immutable model, image choice and Slurm features.

Split by noun: ``model`` (``Image``, ``Catalogue``), ``manifest`` (TOML schema, loading, all problems at
once), ``select`` (``select_image``, pure), ``features`` (what Slurm sees). Import from here.
"""

from .features import (
    Vocabulary,
    feature_os_tag,
    image_features,
    libc_floors,
    vocabulary,
)
from .manifest import (
    catalogue_problems,
    check_catalogue,
    dump_manifest,
    load_catalogue,
    load_manifest,
    parse_manifest,
    read_manifest,
)
from .model import ARCHES, FORMATS, Catalogue, Image
from .select import satisfies, select_image

__all__ = [
    "ARCHES",
    "FORMATS",
    "Catalogue",
    "Image",
    "Vocabulary",
    "catalogue_problems",
    "check_catalogue",
    "dump_manifest",
    "feature_os_tag",
    "image_features",
    "libc_floors",
    "load_catalogue",
    "load_manifest",
    "parse_manifest",
    "read_manifest",
    "satisfies",
    "select_image",
    "vocabulary",
]

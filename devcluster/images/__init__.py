"""Container images without a registry: built locally as OCI archives, cached by content.

``build_image(name)`` returns a :class:`BuiltImage` -- ``ref`` (``localhost/<name>:<tag>``) and
``archive`` (an OCI archive that ``ctr images import`` names exactly ``ref``); ``import_image``
imports one into containerd's ``k8s.io`` namespace and pins it. ``build_all`` builds every image
of :data:`IMAGES` (``python -m devcluster.images build --all``). Caches live under
``${THV_CACHE_DIR:-~/.cache/thv}/images``; progress lines go to stderr.

The builder: :mod:`devcluster.images.oci` (keys, layers, umoci layouts, archives, import);
:mod:`devcluster.images.layers` (Debian base, Python packages, the project's wheel, the
Dockerfile's configuration); :mod:`devcluster.images.catalog` (the images).
"""

from devcluster.images.catalog import IMAGES, build_all, build_image
from devcluster.images.oci import PINNED_LABEL, BuiltImage, ImageBuildError, ImageConfig, import_image

__all__ = [
    "IMAGES",
    "PINNED_LABEL",
    "BuiltImage",
    "ImageBuildError",
    "ImageConfig",
    "build_all",
    "build_image",
    "import_image",
]

"""``python -m devcluster.images build [--all | NAME...]``: build images (cached), one ref per
line on stdout; ``import --address SOCKET NAME...`` also imports them into containerd's
``k8s.io`` namespace, pinned. Progress on stderr."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from devcluster.images.catalog import IMAGES, build_all
from devcluster.images.oci import ImageBuildError, import_image, log


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m devcluster.images", description="build the local images (cached by content)"
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for cmd in ("build", "import"):
        p = sub.add_parser(cmd, help=f"{cmd} images (default: all)")
        p.add_argument("names", nargs="*", metavar="NAME", help=f"one of: {', '.join(IMAGES)}")
        p.add_argument("--all", action="store_true", help="every image")
        p.add_argument("--quiet", "-q", action="store_true", help="no progress on stderr")
        p.add_argument("--archives", action="store_true", help="print 'REF ARCHIVE' per image")
        if cmd == "import":
            p.add_argument("--address", required=True, help="containerd's socket")
    args = parser.parse_args(argv)
    names = list(IMAGES) if args.all or not args.names else list(args.names)
    try:
        built = build_all(names, quiet=args.quiet)
        for image in built:
            if args.command == "import":
                import_image(image, containerd_address=args.address)
                log(args.quiet, f"imported {image.ref}")
            print(f"{image.ref} {image.archive}" if args.archives else image.ref, flush=True)
    except ImageBuildError as err:
        print(f"images: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

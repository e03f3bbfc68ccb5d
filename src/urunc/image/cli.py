"""``urunc-build -f Containerfile -t NAME:TAG [-o FILE] [--format oci|docker] CONTEXT``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

EXIT_OK = 0
EXIT_BUILD_FAILED = 1
EXIT_USAGE = 2


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="urunc-build",
        description="Build a unikernel image (FROM scratch) into an OCI or docker archive.",
        epilog="After 'ctr image import FILE' the image is listed under its full name, "
        "e.g. -t hello:latest → docker.io/library/hello:latest; pass that name to 'ctr run'.",
    )
    p.add_argument(
        "-f",
        "--file",
        type=Path,
        help="Containerfile (default: CONTEXT/Containerfile, else CONTEXT/Dockerfile)",
    )
    p.add_argument(
        "-t",
        "--tag",
        required=True,
        help="image name, NAME[:TAG] (tag defaults to latest)",
    )
    p.add_argument(
        "-o",
        "--output",
        type=Path,
        help="archive to write (default: NAME_TAG.tar in the current directory)",
    )
    p.add_argument(
        "--format",
        choices=("oci", "docker"),
        default="oci",
        help="archive format (default: oci)",
    )
    p.add_argument("context", type=Path, help="build context directory")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    from ._build import build_image
    from ._errors import ImageBuildError

    containerfile = args.file
    if containerfile is None:
        containerfile = args.context / "Containerfile"
        if not containerfile.exists() and (args.context / "Dockerfile").exists():
            containerfile = args.context / "Dockerfile"
    try:
        image = build_image(
            containerfile, args.context, args.tag, args.output, args.format
        )
    except ImageBuildError as exc:
        print(f"urunc-build: {exc}", file=sys.stderr)
        return EXIT_BUILD_FAILED
    digest = image.manifest_digest or image.config_digest
    print(f"{image.name} {digest} {image.output}")
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())

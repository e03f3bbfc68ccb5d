"""``urunc-build -f Containerfile -t NAME:TAG [-o FILE] [--format oci|docker] CONTEXT``."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from pathlib import Path

from . import _workdir

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


class Stopped(BaseException):
    """A stop signal arrived: unwinds the build (its scratch directory goes) like KeyboardInterrupt."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def _stop(signum: int, frame: object) -> None:
    # The clean-up that follows must not be cut short by a second signal.
    for sig in _workdir.STOP_SIGNALS:
        signal.signal(sig, signal.SIG_IGN)
    raise Stopped(signum)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    from ._build import build_image
    from ._errors import ImageBuildError

    containerfile = args.file
    if containerfile is None:
        containerfile = args.context / "Containerfile"
        if not containerfile.exists() and (args.context / "Dockerfile").exists():
            containerfile = args.context / "Dockerfile"
    handled = threading.current_thread() is threading.main_thread()
    previous = {sig: signal.signal(sig, _stop) for sig in _workdir.STOP_SIGNALS} if handled else {}
    try:
        image = build_image(
            containerfile, args.context, args.tag, args.output, args.format
        )
    except ImageBuildError as exc:
        print(f"urunc-build: {exc}", file=sys.stderr)
        return EXIT_BUILD_FAILED
    except OSError as exc:  # what the build could not foresee (a full disk): one line, no traceback
        where = f": {exc.filename}" if exc.filename else ""
        print(f"urunc-build: {(exc.strerror or str(exc)).lower()}{where}", file=sys.stderr)
        return EXIT_BUILD_FAILED
    except Stopped as stop:
        # Cleaned up; now end as the signal would have, so the caller sees what happened.
        signal.signal(stop.signum, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, [stop.signum])
        os.kill(os.getpid(), stop.signum)
        return 128 + stop.signum
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    digest = image.manifest_digest or image.config_digest
    print(f"{image.name} {digest} {image.output}")
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())

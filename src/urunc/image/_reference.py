"""Image references: parse ``NAME[:TAG]`` and normalise it the way docker does."""

from __future__ import annotations

import re
from dataclasses import dataclass

from ._errors import ImageBuildError

DEFAULT_DOMAIN = "docker.io"
DEFAULT_TAG = "latest"

_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_DOMAIN = r"(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*(?::[0-9]+)?"
_PATH_RE = re.compile(rf"^{_COMPONENT}(?:/{_COMPONENT})*$")
_DOMAIN_RE = re.compile(rf"^{_DOMAIN}$")
_TAG_RE = re.compile(r"^[\w][\w.-]{0,127}$")


@dataclass(frozen=True, slots=True)
class ImageReference:
    """A fully qualified ``domain/path:tag`` reference."""

    domain: str
    path: str
    tag: str

    @property
    def name(self) -> str:
        """The full name containerd stores, e.g. ``docker.io/library/hello:latest``."""
        return f"{self.domain}/{self.path}:{self.tag}"

    @property
    def familiar(self) -> str:
        """The short name docker shows, e.g. ``hello:latest``."""
        path = self.path
        if self.domain == DEFAULT_DOMAIN:
            path = path.removeprefix("library/")
            return f"{path}:{self.tag}"
        return f"{self.domain}/{path}:{self.tag}"

    @property
    def archive_stem(self) -> str:
        """Default output file name without extension: ``NAME_TAG``."""
        return f"{self.path.rsplit('/', 1)[-1]}_{self.tag}"


def parse_reference(text: str) -> ImageReference:
    """Parse ``[domain/]path[:tag]``; digests are refused (we make the digest)."""
    if "@" in text:
        raise ImageBuildError(f"image name must not contain a digest: {text!r}")
    name, tag = text, DEFAULT_TAG
    last = text.rsplit("/", 1)[-1]
    if ":" in last:
        name, tag = text.rsplit(":", 1)
    if not _TAG_RE.match(tag):
        raise ImageBuildError(f"invalid image tag {tag!r} in {text!r}")
    domain, path = DEFAULT_DOMAIN, name
    first, sep, rest = name.partition("/")
    if sep and (
        "." in first or ":" in first or first == "localhost" or first != first.lower()
    ):
        domain, path = first, rest
        if not _DOMAIN_RE.match(domain):
            raise ImageBuildError(f"invalid registry {domain!r} in image name {text!r}")
    if domain == "index.docker.io":
        domain = DEFAULT_DOMAIN
    if not _PATH_RE.match(path):
        raise ImageBuildError(
            f"invalid image name {text!r} (lower-case letters, digits, '.', '_', '-', '/')"
        )
    if domain == DEFAULT_DOMAIN and "/" not in path:
        path = f"library/{path}"
    return ImageReference(domain=domain, path=path, tag=tag)

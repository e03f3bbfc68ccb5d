"""Image builder: a Containerfile subset → an OCI or docker image archive.

Public API::

    build_image(containerfile, context, tag, output=None, fmt="oci", *, epoch=None) -> BuiltImage
    parse_containerfile(text, source="Containerfile") -> Recipe
    parse_reference("hello:latest").name == "docker.io/library/hello:latest"
    encode_urunc_json / decode_urunc_json
"""

from ._build import BuiltImage, build_image, default_output, source_date_epoch
from ._containerfile import CopyStep, Recipe, parse_containerfile
from ._errors import ImageBuildError
from ._reference import ImageReference, parse_reference
from ._urunc_json import URUNC_PREFIX, decode_urunc_json, encode_urunc_json

__all__ = [
    "URUNC_PREFIX",
    "BuiltImage",
    "CopyStep",
    "ImageBuildError",
    "ImageReference",
    "Recipe",
    "build_image",
    "decode_urunc_json",
    "default_output",
    "encode_urunc_json",
    "parse_containerfile",
    "parse_reference",
    "source_date_epoch",
]

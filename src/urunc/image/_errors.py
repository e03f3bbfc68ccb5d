"""Errors raised while building an image.

ImageBuildError      any failure: bad Containerfile, bad reference,
                     missing or escaping COPY source, unwritable output
"""

from __future__ import annotations


class ImageBuildError(Exception):
    """A build failed; the message is one lower-case line naming the offending value."""

"""Retention tests run on stores distribution, `regtool serve` and skopeo made."""

from __future__ import annotations

from tests.interop.conftest import (
    distribution_fs,
    distribution_swift,
    image_tools,
    make_distribution,
)
from tests.server.conftest import serve_registry

__all__ = [
    "distribution_fs",
    "distribution_swift",
    "image_tools",
    "make_distribution",
    "serve_registry",
]

"""gc tests use distribution's fixtures (a registry on a fresh filesystem or Swift store)."""

from __future__ import annotations

from tests.interop.conftest import (
    distribution_fs,
    distribution_swift,
    image_tools,
    make_distribution,
)

__all__ = ["distribution_fs", "distribution_swift", "image_tools", "make_distribution"]

"""Fixtures for `regtool migrate`'s tests: a V1 store built from real umoci images."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.interop.conftest import distribution_fs, image_tools, make_distribution
from tests.migrate.source import Source, build_source
from tests.server.conftest import serve_registry

__all__ = ["distribution_fs", "image_tools", "make_distribution", "serve_registry"]


@pytest.fixture(scope="module")
def source(image_tools: None, tmp_path_factory: pytest.TempPathFactory) -> Source:
    """The umoci images `app` and `tools` (see `tests/migrate/source.py`), built once."""
    return build_source(Path(tmp_path_factory.mktemp("oci")) / "oci")

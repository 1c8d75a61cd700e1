"""`regtool verify` and `ls` on JSON nested deeper than Python's parser goes (distribution
stores such a manifest; a V1 registry stored whatever json a client sent): reported as
invalid, exit 1, never a traceback."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from regtool.layout import v2_write
from regtool.layout.v2 import V2Layout
from regtool.oci import OCI_MANIFEST, Digest
from regtool.storage.local import LocalDriver
from tests.v1store import V1Store
from tests.v2store import write_image

NESTED = "[" * 3000 + "]" * 3000


def test_v2_manifest_nested_too_deeply(cli, tmp_path: Path) -> None:
    layout = V2Layout(LocalDriver(tmp_path))
    image = write_image(layout, "app", "ok")
    doc = {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": {}, "x": "NESTED"}
    body = json.dumps(doc).replace('"NESTED"', NESTED).encode()
    digest = Digest("sha256", hashlib.sha256(body).hexdigest())
    layout.driver.put(layout.blob_data(digest), body)
    v2_write.write_link(layout, layout.revision_link("app", digest), digest)
    v2_write.write_link(layout, layout.tag_current_link("app", "deep"), digest)

    result = cli("verify", "-l", str(tmp_path), "--all")
    assert result.exit_code == 1, result.stdout + result.stderr
    assert "nested too deeply" in result.stdout
    assert "Traceback" not in result.stdout + result.stderr
    result = cli("ls", str(tmp_path), "app")
    assert result.exit_code == 0, result.stderr
    assert "ok" in result.stdout and image.manifest.hex[:12] in result.stdout


def test_v1_json_nested_too_deeply(cli, tmp_path: Path) -> None:
    v1 = V1Store(LocalDriver(tmp_path), "docker-registry")
    image = v1.add_chain(1)
    v1.tag("exampleapp", "1.0", image)
    v1.driver.put(
        f"docker-registry/images/{image.image_id}/json",
        b'{"id": "' + image.image_id.encode() + b'", "x": ' + NESTED.encode() + b"}",
    )
    v1.driver.put(f"docker-registry/images/{image.image_id}/ancestry", NESTED.encode())
    result = cli("verify", "-l", str(tmp_path), "--all")
    assert result.exit_code == 1, result.stdout + result.stderr
    assert "is not JSON" in result.stdout
    assert "Traceback" not in result.stdout + result.stderr

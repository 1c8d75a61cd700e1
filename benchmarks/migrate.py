"""`regtool migrate` against the physical floor of the same work, in the same run.

    .venv/bin/python -m benchmarks.migrate [--gib 2] [--layer-mib 128] [--jobs 2] [--swift]

Writes a V1 store (tags of two images each, layers of `--layer-mib` as plain tars whose
content compresses about 2:1, as binaries do) on the local disk, or with `--swift` in a
Swift on loopback started as the tests start it (V1 under `docker-registry/`, migrated
in place). Warms the page cache, then times:

1. the floor: every layer byte read, gzipped with `pigz -p 2 -1`, and both forms
   sha256'd (`sha256sum`), layers one after another, each a shell pipeline;
2. `regtool migrate` in a subprocess (gzip, default format), its peak RSS from
   /usr/bin/time.

Prints both throughputs (V1 layer bytes per second) and regtool's ratio (target >= 0.7)
and peak RSS (target < 200 MiB).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

from regtool.storage.base import Driver
from regtool.storage.local import LocalDriver

MIB = 1 << 20


def _content(size: int) -> bytes:
    """Bytes that deflate about 2:1: random bytes written as hex."""
    return os.urandom(size // 2).hex().encode()


def _layer_tar(size: int) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for n in range(max(1, size // (16 * MIB))):
            part = _content(min(16 * MIB, size - n * 16 * MIB))
            info = tarfile.TarInfo(f"usr/lib/file-{n}.bin")
            info.size = len(part)
            tar.addfile(info, io.BytesIO(part))
    return buf.getvalue()


def write_v1(driver: Driver, root: str, total: int, layer_size: int) -> list[str]:
    """The V1 store; returns the layer paths."""
    from tests.v1store import V1Image, V1Store

    store = V1Store(driver, root)
    paths = []
    parent: V1Image | None = None
    for n in range(max(1, total // layer_size)):
        image_id = os.urandom(32).hex()
        doc: dict[str, object] = {"id": image_id, "created": "2015-03-13T16:47:24.0Z"}
        if parent is not None and n % 2:
            doc["parent"] = parent.image_id
        layer = _layer_tar(layer_size)
        ancestry = [image_id] + (parent.ancestry if parent is not None and n % 2 else [])
        image = V1Image(image_id, json.dumps(doc).encode(), layer, ancestry)
        base = f"{root}/images/{image_id}".lstrip("/")
        driver.put(f"{base}/json", image.json_bytes)
        driver.put(f"{base}/layer", layer)
        driver.put(f"{base}/ancestry", json.dumps(ancestry).encode())
        driver.put(f"{base}/_checksum", json.dumps([image.checksum]).encode())
        image.layer = b""  # not kept: the store holds it
        store.images[image_id] = image
        paths.append(f"{base}/layer")
        if n % 2:
            store.tag(f"bench/app{n}", "1", image)
        parent = image
    return paths


def floor(files: list[Path]) -> float:
    """Seconds to read each layer, sha256 it and its `pigz -p 2 -1` form."""
    started = time.monotonic()
    for f in files:
        subprocess.run(
            [
                "bash",
                "-c",
                'tee >(sha256sum >/dev/null) < "$1" | pigz -p 2 -1 | sha256sum >/dev/null',
                "-",
                str(f),
            ],
            check=True,
        )
    return time.monotonic() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--gib", type=float, default=2.0)
    parser.add_argument("--layer-mib", type=int, default=128)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--swift", action="store_true")
    args = parser.parse_args()
    total, layer_size = int(args.gib * (1 << 30)), args.layer_mib * MIB
    regtool = str(Path(sys.executable).with_name("regtool"))
    with tempfile.TemporaryDirectory(prefix="regtool-bench-migrate-") as tmp:
        env = dict(os.environ)
        v1_local = Path(tmp) / "v1"
        write_v1(LocalDriver(v1_local), "", total, layer_size)
        files = sorted(v1_local.glob("images/*/layer"))
        nbytes = sum(f.stat().st_size for f in files)
        service = None
        if args.swift:
            from tests.services.swift import start_swift

            service = start_swift(Path(tmp) / "swift")
            container = "docker_registry"
            write_v1(service.driver(container), "docker-registry", total, layer_size)
            env.update(ST_AUTH=service.auth_url, ST_USER=service.user, ST_KEY=service.key)
            src, dst = f"swift://{container}/docker-registry", f"swift://{container}"
        else:
            src, dst = str(v1_local), str(Path(tmp) / "v2")
        try:
            for f in files:  # warm the page cache
                f.read_bytes()
            floor_s = floor(files)
            started = time.monotonic()
            rss_file = Path(tmp) / "rss"
            command = [regtool, "migrate", src, "--to", dst, "--jobs", str(args.jobs), "--json"]
            done = subprocess.run(
                ["/usr/bin/time", "-f", "%M", "-o", str(rss_file), *command],
                env=env,
                capture_output=True,
                check=False,
            )
            ours_s = time.monotonic() - started
            if done.returncode != 0:
                sys.exit(f"regtool migrate failed: {done.stderr.decode()[-2000:]}")
            peak = int(rss_file.read_text().split()[-1]) / 1024  # KiB -> MiB
        finally:
            if service is not None:
                service.stop()
    totals = json.loads(done.stdout)["totals"]
    where = "Swift (loopback)" if args.swift else "local disk"
    print(f"{where}: {nbytes / MIB:.0f} MiB of V1 layers in {len(files)} layers")
    rate = nbytes / MIB / floor_s
    print(f"floor (read + pigz -p 2 -1 + sha256 x2): {floor_s:.1f} s, {rate:.0f} MiB/s")
    print(
        f"regtool migrate --jobs {args.jobs}: {ours_s:.1f} s, {nbytes / MIB / ours_s:.0f} MiB/s, "
        f"{totals['layers_converted']} layers, {totals['bytes_written'] / MIB:.0f} MiB written"
    )
    print(f"ratio: {floor_s / ours_s:.2f} (target >= 0.7); peak RSS {peak:.0f} MiB (target < 200)")


if __name__ == "__main__":
    main()

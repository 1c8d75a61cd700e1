"""Benchmark: `regtool ls` and `gc --dry-run` over SFTP 20 ms away vs `ssh host find`.

Starts the test suite's sshd on loopback and a `LatencyProxy` in front of it adding
DELAY_MS each way (20 ms round trip by default), and writes a registry in distribution's
filesystem layout into a directory the sshd serves, through `regtool serve`'s write path:
REPOS repositories x 3 tags (each tag pushed PUSHES times, so that tag histories and old
revisions are there), each image a manifest, a config and 6 layers, one base layer shared
by all. Then, in the same run, through the proxy, each timed as a process (connection and
login included), median of RUNS:

- `ssh -p PROXY host find DIR -type f`: one connection, one command, every file name;
- `regtool ls --json sftp://...`;
- `regtool gc --dry-run sftp://...`;

and prints each time and the ratios (targets: ls <= 3x, gc --dry-run <= 5x).

Usage: .venv/bin/python -m benchmarks.ls_sftp_latency [--repos 20] [--runs 3] [--delay-ms 10]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.installed import installed_env
from benchmarks.latency_proxy import LatencyProxy
from regtool.layout.v2 import FILESYSTEM_ROOT, V2Layout
from regtool.oci import OCI_MANIFEST, Digest
from regtool.server.registry import Registry
from regtool.storage.local import LocalDriver
from tests.services.sshd import start_sshd

TAGS = ("1.0", "1.1", "latest")
LAYERS = 6
CONFIG_TYPE = "application/vnd.oci.image.config.v1+json"
LAYER_TYPE = "application/vnd.oci.image.layer.v1.tar+gzip"


def populate(root: Path, repos: int, pushes: int) -> None:
    """The registry, written by the server's own write path onto a local directory."""
    driver = LocalDriver(root)
    layout = V2Layout(driver, FILESYSTEM_ROOT)
    registry = Registry(layout)

    def blob(data: bytes) -> tuple[Digest, int]:
        digest = Digest.of(data)
        with driver.writer(layout.blob_data(digest)) as w:
            w.write(data)
            w.commit()
        return digest, len(data)

    base = blob(os.urandom(4096))
    for n in range(repos):
        name = f"team{n % 5}/app{n:03d}"
        for _ in range(pushes):
            for tag in TAGS:
                layers = [base] + [blob(os.urandom(2048)) for _ in range(LAYERS - 1)]
                config = blob(json.dumps({"architecture": "amd64", "os": "linux"}).encode())
                manifest = {
                    "schemaVersion": 2,
                    "mediaType": OCI_MANIFEST,
                    "config": {
                        "mediaType": CONFIG_TYPE,
                        "digest": str(config[0]),
                        "size": config[1],
                    },
                    "layers": [
                        {"mediaType": LAYER_TYPE, "digest": str(d), "size": s} for d, s in layers
                    ],
                }
                for d, _ in [config, *layers]:
                    registry.link_blob(name, d)
                registry.put_manifest(name, tag, json.dumps(manifest).encode(), OCI_MANIFEST)
    driver.close()


def timed(
    argv: list[str], runs: int, ok: tuple[int, ...] = (0,), env: dict[str, str] | None = None
) -> tuple[float, bytes]:
    """Median wall time of `argv` over `runs`, and its last output."""
    times, out = [], b""
    for _ in range(runs):
        start = time.perf_counter()
        done = subprocess.run(argv, capture_output=True, check=False, env=env)
        times.append(time.perf_counter() - start)
        if done.returncode not in ok:
            raise SystemExit(f"{argv[0]} exited {done.returncode}: {done.stderr.decode()[-2000:]}")
        out = done.stdout
    return statistics.median(times), out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repos", type=int, default=20)
    parser.add_argument("--pushes", type=int, default=2, help="pushes of each tag")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--delay-ms", type=float, default=10.0, help="added each way")
    args = parser.parse_args()
    regtool = str(Path(sys.executable).parent / "regtool")

    with tempfile.TemporaryDirectory(prefix="regtool-bench-") as tmp:
        service = start_sshd(Path(tmp))
        try:
            store = service.data_root / "registry"
            t0 = time.perf_counter()
            populate(store, args.repos, args.pushes)
            dirs = sum(1 for p in store.rglob("*") if p.is_dir())
            files = sum(1 for p in store.rglob("*") if p.is_file())
            print(
                f"store: {args.repos} repositories x {len(TAGS)} tags x {args.pushes} pushes: "
                f"{dirs} directories, {files} files (built in {time.perf_counter() - t0:.1f} s)"
            )
            with LatencyProxy(service.port, args.delay_ms / 1000) as proxy:
                service.trust(proxy.port)
                ssh = [
                    "ssh",
                    "-p",
                    str(proxy.port),
                    "-i",
                    str(service.key_path),
                    "-o",
                    f"UserKnownHostsFile={service.known_hosts}",
                    "-o",
                    "BatchMode=yes",
                    f"{service.username}@127.0.0.1",
                ]
                where = f"sftp://{service.username}@127.0.0.1:{proxy.port}{store}"
                env_args = ["--identity", str(service.key_path)]
                os.environ["REGTOOL_SFTP_KNOWN_HOSTS"] = str(service.known_hosts)
                os.environ["REGTOOL_CACHE"] = "off"  # every run reads as a first run would
                env = installed_env()  # regtool's bytecode compiled, as pip installs it

                find_time, names = timed([*ssh, "find", str(store), "-type", "f"], args.runs)
                assert len(names.splitlines()) == files, (len(names.splitlines()), files)
                ls_time, out = timed(
                    [regtool, "ls", "--json", *env_args, where], args.runs, env=env
                )
                tags = json.loads(out)["totals"]["tags"]
                assert tags == args.repos * len(TAGS), tags
                gc_time, _ = timed(
                    [regtool, "gc", "--dry-run", "--min-age", "0s", *env_args, "-l", where],
                    args.runs,
                    env=env,
                )
            rtt = 2 * args.delay_ms
            load = ", ".join(f"{n:.2f}" for n in os.getloadavg())
            print(f"round trip: {rtt:.0f} ms through the proxy; median of {args.runs} runs")
            print(f"load average after the runs: {load} ({os.cpu_count()} CPUs)")
            print(f"ssh find -type f:     {find_time:6.2f} s")
            print(
                f"regtool ls --json:    {ls_time:6.2f} s  ratio {ls_time / find_time:5.2f}x (<= 3x)"
            )
            print(
                f"regtool gc --dry-run: {gc_time:6.2f} s  ratio {gc_time / find_time:5.2f}x (<= 5x)"
            )
        finally:
            service.stop()


if __name__ == "__main__":
    main()

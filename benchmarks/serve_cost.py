"""What each operating feature of `regtool serve` costs in CPU per request: the same
small-image workload through the server's ASGI app with everything off, with metrics,
access lines and notifications each on alone, and with all three on.

    .venv/bin/python -m benchmarks.serve_cost [--images 100] [--rounds 15] [--clients 32]
    .venv/bin/python -m benchmarks.serve_cost --profile all    # where "all" spends its CPU

Wall time on a shared machine moves with others' load, and so does the CPU time of a
whole server with its HTTP clients beside it. This drives the apps in one process, with
no sockets between client and app (HTTP parsing costs the same whichever feature is on):
CLIENTS tasks push IMAGES new small images to one app (per blob a HEAD, a POST and a PUT
?digest=, then the manifest PUT), then pull them (manifest and each blob), and the
process's CPU time (`time.process_time`: every thread, storage calls and notification
delivery included) is read around each phase. A phase ends when the notifier has
delivered every event it made, so its delivery is counted where it was caused. The
variants take turns, in a rotated order, for ROUNDS rounds; each variant's median CPU
microseconds per request is compared with "off".

As in `serve_operated`: "metrics" is `http.debug.prometheus` (the debug listener is not
served: a scrape is not part of a request's cost); "log" an access line per request in
the text format, written to a file; "notify" one endpoint, a receiver in a process of its
own that answers 200 to every POST.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import dataclasses
import io
import pstats
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import uvloop

from benchmarks.cpu import load_average
from benchmarks.serve_small_images import OCI_MANIFEST, SmallImage
from regtool.server.access_log import configure_logging
from regtool.server.app import create_app
from regtool.server.operations import Operations
from regtool.server.ops_settings import (
    DebugSettings,
    EndpointSettings,
    HealthSettings,
    NotificationSettings,
    UploadPurgeSettings,
)
from regtool.server.settings import LogSettings, ServerSettings
from regtool.storage.local import LocalDriver

VARIANTS = ("off", "metrics", "log", "notify", "all")
ADDR = "127.0.0.1:5000"


class Variant:
    """One app over its own directory, operated as `name` says."""

    def __init__(self, name: str, root: Path, receiver_url: str):
        self.name = name
        metrics = name in ("metrics", "all")
        notify = name in ("notify", "all")
        endpoints = (EndpointSettings("bench", receiver_url),) if notify else ()
        self.ops = Operations.from_settings(
            DebugSettings("127.0.0.1:0" if metrics else None, metrics),
            HealthSettings(),
            NotificationSettings(endpoints),
            UploadPurgeSettings(enabled=False),
            ADDR,
        )
        access = name in ("log", "all")
        settings = dataclasses.replace(ServerSettings(), log=LogSettings(access_log=access))
        root.mkdir(parents=True)
        self.app = create_app(LocalDriver(root), settings=settings, ops=self.ops, ui=False)
        self.ops.start()

    def settled(self) -> bool:
        """Every event made so far delivered."""
        notifier = self.ops.notifier
        return notifier is None or all(len(e) == 0 for e in notifier.endpoints)

    async def call(
        self, method: str, path: str, body: bytes = b"", headers: tuple[tuple[str, str], ...] = ()
    ) -> tuple[int, dict[bytes, bytes], bytes]:
        """One request through the app: (status, headers, body)."""
        target, _, query = path.partition("?")
        scope: dict[str, Any] = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": method,
            "scheme": "http",
            "path": target,
            "raw_path": target.encode(),
            "query_string": query.encode(),
            "root_path": "",
            "headers": [
                (b"host", ADDR.encode()),
                (b"user-agent", b"bench"),
                (b"content-length", str(len(body)).encode()),
                *((k.lower().encode(), v.encode()) for k, v in headers),
            ],
            "client": ("127.0.0.1", 40000),
            "server": ("127.0.0.1", 5000),
        }
        sent = False
        status = 0
        answer_headers: dict[bytes, bytes] = {}
        chunks: list[bytes] = []

        async def receive() -> dict[str, Any]:
            nonlocal sent
            if sent:
                await asyncio.Event().wait()  # a disconnect never comes
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                answer_headers.update(message.get("headers", ()))
            else:
                chunks.append(message.get("body", b""))

        await self.app(scope, receive, send)
        return status, answer_headers, b"".join(chunks)


async def push(v: Variant, image: SmallImage) -> int:
    for digest, data in image.blobs.items():
        status, _, _ = await v.call("HEAD", f"/v2/{image.repo}/blobs/{digest}")
        if status == 200:
            continue
        status, headers, _ = await v.call("POST", f"/v2/{image.repo}/blobs/uploads/")
        assert status == 202, status
        location = headers[b"location"].decode().removeprefix(f"http://{ADDR}")
        sep = "&" if "?" in location else "?"
        kind = (("Content-Type", "application/octet-stream"),)
        status, _, _ = await v.call("PUT", f"{location}{sep}digest={digest}", data, kind)
        assert status == 201, status
    kind = (("Content-Type", OCI_MANIFEST),)
    status, _, _ = await v.call(
        "PUT", f"/v2/{image.repo}/manifests/{image.tag}", image.manifest, kind
    )
    assert status == 201, status
    return 3 * len(image.blobs) + 1


async def pull(v: Variant, image: SmallImage) -> int:
    accept = (("Accept", OCI_MANIFEST),)
    status, _, body = await v.call("GET", f"/v2/{image.repo}/manifests/{image.tag}", b"", accept)
    assert status == 200 and body == image.manifest, status
    for digest, data in image.blobs.items():
        status, _, body = await v.call("GET", f"/v2/{image.repo}/blobs/{digest}")
        assert status == 200 and body == data, status
    return 1 + len(image.blobs)


async def phase(v: Variant, images: list[SmallImage], clients: int, step: Any) -> int:
    """`step` over every image, `clients` at a time; the number of requests."""
    todo = iter(images)
    requests = 0

    async def client() -> None:
        nonlocal requests
        for image in todo:
            done = await step(v, image)
            requests += done

    await asyncio.gather(*(client() for _ in range(clients)))
    return requests


def switches() -> int:
    """Voluntary context switches (a thread waiting: for the GIL, a lock, I/O) of every
    thread of this process so far; others' load on the machine adds involuntary ones."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_nvcsw


def cpu_per_request(
    loop: asyncio.AbstractEventLoop, v: Variant, images: list[SmallImage], clients: int, step: Any
) -> tuple[float, float]:
    """CPU microseconds and context switches per request of `step` over `images` on
    `loop`, delivery of its events included."""
    before, switched = time.process_time(), switches()
    requests = loop.run_until_complete(phase(v, images, clients, step))
    while not v.settled():
        time.sleep(0.01)
    cpu = 1e6 * (time.process_time() - before) / requests
    return cpu, (switches() - switched) / requests


@contextlib.contextmanager
def receiver() -> Iterator[str]:
    """A webhook receiver in a process of its own (its CPU is not the server's)."""
    code = (
        "import sys, time\n"
        "from benchmarks.serve_operated import Receiver\n"
        "r = Receiver(); print(r.url, flush=True); sys.stdin.read()\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    assert proc.stdout is not None and proc.stdin is not None
    try:
        yield proc.stdout.readline().decode().strip()
    finally:
        proc.stdin.close()
        proc.wait(10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=100)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--only", nargs="*", choices=VARIANTS, default=list(VARIANTS))
    parser.add_argument("--profile", choices=VARIANTS, help="profile one variant's push instead")
    parser.add_argument("--push-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    variants = [v for v in VARIANTS if v in args.only]
    if args.profile:
        variants = [args.profile]
    # (push, pull) (CPU microseconds, context switches) per request, one pair a round
    costs: dict[str, list[tuple[tuple[float, float], tuple[float, float]]]] = {
        name: [] for name in variants
    }
    with (
        tempfile.TemporaryDirectory(prefix="regtool-bench-") as tmp_name,
        receiver() as url,
        open(Path(tmp_name) / "access.log", "w") as log_file,
    ):
        tmp = Path(tmp_name)
        stderr, sys.stderr = sys.stderr, log_file  # the access lines' handler writes there
        restore = configure_logging(LogSettings(), "INFO")
        loop = uvloop.new_event_loop()  # as uvicorn runs the server
        try:
            apps = {name: Variant(name, tmp / name, url) for name in variants}
            # a first round warms every app (imports, caches), not counted
            for app in apps.values():
                images = [SmallImage.make(900_000 + n) for n in range(args.clients)]
                cpu_per_request(loop, app, images, args.clients, push)
            if args.profile:
                images = [SmallImage.make(n) for n in range(args.images * args.rounds)]
                profiler = cProfile.Profile()
                profiler.enable()
                cpu_per_request(loop, apps[args.profile], images, args.clients, push)
                profiler.disable()
                out = io.StringIO()
                pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(40)
                print(out.getvalue(), file=stderr)
                return
            for r in range(args.rounds):
                images = [SmallImage.make(r * 10_000 + n) for n in range(args.images)]
                shift = r % len(variants)
                for name in variants[shift:] + variants[:shift]:
                    app = apps[name]
                    pushed = cpu_per_request(loop, app, images, args.clients, push)
                    pulled = (
                        (0.0, 0.0)
                        if args.push_only
                        else cpu_per_request(loop, app, images, args.clients, pull)
                    )
                    costs[name].append((pushed, pulled))
            for app in apps.values():
                app.ops.close()
        finally:
            loop.close()
            restore()
            sys.stderr = stderr
    print(
        f"{args.images} small images a round ({7 * args.images} push, {3 * args.images} pull "
        f"requests), {args.clients} clients, {args.rounds} rounds; load {load_average()}"
    )
    print(
        "per request: CPU microseconds, median (lowest-highest), and off's median / the "
        "variant's; context switches (median)"
    )
    base = {
        i: statistics.median(c[i][0] for c in costs.get("off", [((1, 0), (1, 0))])) for i in (0, 1)
    }
    for name in variants:
        line = f"{name:8}"
        for i, what in ((0, "push"), (1, "pull")):
            cpu = [c[i][0] for c in costs[name]]
            median = statistics.median(cpu)
            ratio = f" {base[i] / median:.2f}" if base[i] and median else ""
            switched = statistics.median(c[i][1] for c in costs[name])
            line += (
                f"   {what} {median:5.0f} ({min(cpu):.0f}-{max(cpu):.0f}){ratio} cs {switched:5.2f}"
            )
        print(line)


if __name__ == "__main__":
    main()

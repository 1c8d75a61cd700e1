"""Instructions each operating feature of `regtool serve` adds to a request, counted by
valgrind: a steady figure where CPU time on a shared machine is not (`serve_cost`'s
per-request CPU moves by a quarter between runs; these move by about 1 %).

    .venv/bin/python -m benchmarks.serve_feature_instructions      # needs valgrind

Each feature's work for one request is done N times in a process of its own under
`valgrind --tool=cachegrind`, once with N = 200 and once with N = 3,200; the difference
over 3,000 leaves start-up out (`PYTHONHASHSEED=0`: the same start-up both times):

- metrics: a request counted (`Metrics.count_request`, the in-progress count) and one
  storage call (`regtool_storage_operations_total`);
- log: one access line (`access_log.log_access`), text format, gathered by the handler;
- stamp: one event made in the request's path (`events.stamp`);
- json: one event's share of a 40-event envelope (`events.envelope`, the delivery
  thread's work).

A small-image push makes 7 requests and 3 events per image, so "on" adds about
metrics + log + 3/7 (stamp + json) to a push request; compare it with a push request's
own instructions (`serve_cost --profile off` shows where they go).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys

SCOPE = {
    "type": "http",
    "method": "PUT",
    "path": "/v2/bench/app1/blobs/uploads/0b9c3f0e-0000-4000-8000-000000000000",
    "query_string": b"digest=sha256:" + b"ab" * 32,
    "headers": [(b"host", b"127.0.0.1:5000"), (b"user-agent", b"bench")],
    "client": ("127.0.0.1", 40000),
    "http_version": "1.1",
    "state": {"request_id": "x"},
}
FEATURES = ("metrics", "log", "stamp", "json")


def work(feature: str, n: int) -> None:
    """`feature`'s work for one request, `n` times (run under valgrind)."""
    import multiprocessing  # noqa: F401  (uvicorn imports it; a log record may ask it)

    from regtool.server import access_log
    from regtool.server.metrics import Metrics
    from regtool.server.notifications.events import BLOB_MEDIA_TYPE, Target, envelope, stamp
    from regtool.server.settings import LogSettings

    metrics = Metrics()
    target = Target("blobs", "bench/app1", "sha256:" + "0" * 64, BLOB_MEDIA_TYPE, 4096)
    events = [stamp(SCOPE, "push", target, {"addr": "x"}) for _ in range(40)]
    with open(os.devnull, "w") as devnull:
        sys.stderr = devnull
        access_log._StderrHandler.LINGER = 3600.0  # written once, at the end
        restore = access_log.configure_logging(LogSettings(), "INFO")

        def count() -> None:
            metrics.requests_in_progress += 1
            metrics.requests_in_progress -= 1
            metrics.count_request("PUT", "uploads", 201, 0.003, 4096, 0)
            metrics.child(metrics.storage_ops, "filesystem", "put").inc()

        steps = {
            "metrics": count,
            "log": lambda: access_log.log_access(SCOPE, 201, 0, 0.003),
            "stamp": lambda: stamp(SCOPE, "push", target, {"addr": "x"}),
            "json": lambda: envelope(events),
        }
        step = steps[feature]
        for _ in range(n // 40 if feature == "json" else n):
            step()
        restore()


def instructions(feature: str, n: int) -> int:
    run = subprocess.run(
        [
            *("valgrind", "--tool=cachegrind", "--cache-sim=no", "--cachegrind-out-file=/dev/null"),
            *(sys.executable, "-m", "benchmarks.serve_feature_instructions", feature, str(n)),
        ],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONHASHSEED": "0"},
    )
    found = re.search(r"I\s+refs:\s+([\d,]+)", run.stderr)
    assert found is not None, run.stderr
    return int(found.group(1).replace(",", ""))


def main() -> None:
    if len(sys.argv) == 3:
        work(sys.argv[1], int(sys.argv[2]))
        return
    per = {}
    for feature in FEATURES:
        # json: n events in n / 40 envelopes
        per[feature] = (instructions(feature, 3200) - instructions(feature, 200)) / 3000
        print(f"{feature:8} {per[feature] / 1000:6.1f} thousand instructions", flush=True)
    push = per["metrics"] + per["log"] + 3 / 7 * (per["stamp"] + per["json"])
    print(f"on adds about {push / 1000:.0f} thousand instructions to a small-image push request")


if __name__ == "__main__":
    main()

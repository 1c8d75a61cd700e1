"""What the access log costs: the small-image workload against `regtool serve` with an
access line per request (`--log-level info`, written to a file) and without
(`--log-level warning`), and against distribution with its own access log on.

    .venv/bin/python -m benchmarks.serve_logging [--images 200] [--clients 32]

Prints requests per second per phase, logging-on / logging-off (target >= 0.95) and
regtool (logging on) / distribution (logging on) (target >= 1.0).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from benchmarks.serve_small_images import measure
from benchmarks.serve_throughput import start_regtool
from tests.services.distribution import filesystem_storage, start_distribution


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--clients", type=int, default=32)
    args = parser.parse_args()
    rates: dict[str, tuple[float, float]] = {}
    with tempfile.TemporaryDirectory(prefix="regtool-bench-") as tmp:
        root = Path(tmp)
        dist = start_distribution(
            root / "dist", filesystem_storage(root / "dist-store"), log_level="info"
        )
        try:
            rates["distribution"] = measure(dist.url, args.images, args.clients)
        finally:
            dist.stop()
        for name, level in (("off", "warning"), ("on", "info")):
            log = root / f"regtool-{name}.log"
            proc, url = start_regtool(root / f"store-{name}", level, log)
            try:
                rates[name] = measure(url, args.images, args.clients)
            finally:
                proc.terminate()
                proc.wait(10)
            lines = len(log.read_text().splitlines())
            print(f"regtool access log {name}: {lines} lines logged")
    print(f"{args.images} small images, {args.clients} concurrent clients, local filesystem")
    for i, phase in enumerate(("push", "pull")):
        on, off, dist_rate = rates["on"][i], rates["off"][i], rates["distribution"][i]
        print(
            f"{phase}  regtool log on {on:6.0f} req/s, off {off:6.0f} req/s, ratio "
            f"{on / off:.2f} (target >= 0.95); distribution (log on) {dist_rate:6.0f} req/s, "
            f"ratio {on / dist_rate:.2f} (target >= 1.0)"
        )


if __name__ == "__main__":
    main()

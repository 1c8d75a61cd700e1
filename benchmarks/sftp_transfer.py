"""Throughput of the SFTP driver's streaming writes and reads, by request size.

    .venv/bin/python -m benchmarks.sftp_transfer [--mib 64] [--rounds 3]

Starts the test suite's sshd on loopback and writes then reads one file of MIB MiB through
`SftpDriver.writer` and `SftpDriver.open`, for requests of 32 KiB (what every server
accepts) up to the server's `limits@openssh.com` maximum, each with about `IN_FLIGHT`
bytes in flight. Prints MiB/s and the client's CPU time per MiB per request size (best
of ROUNDS). Loopback has no latency: the figures show the cost per request (CPU,
paramiko's crypto in Python), not what a far server's round trips add; on a busy machine
the CPU figures are the steadier ones.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from regtool.storage.sftp import capabilities, transfer
from tests.services.sshd import SshdService, start_sshd

BLOCK = 1024 * 1024  # what a caller hands the writer at a time


def _run(service: SshdService, mib: int, data: bytes) -> tuple[float, float, float, float]:
    """MiB/s written and read, and client CPU milliseconds per MiB written and read."""
    with service.driver("bench") as d:
        wall, cpu = time.perf_counter(), time.process_time()
        with d.writer("blob") as w:
            for _ in range(mib):
                w.write(data)
            w.commit()
        wrote, wrote_cpu = time.perf_counter() - wall, time.process_time() - cpu
        wall, cpu = time.perf_counter(), time.process_time()
        with d.open("blob") as r:
            while r.read(BLOCK):
                pass
        read, read_cpu = time.perf_counter() - wall, time.process_time() - cpu
        d.delete("blob")
    return mib / wrote, mib / read, 1000 * wrote_cpu / mib, 1000 * read_cpu / mib


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--in-flight", type=int, default=transfer.IN_FLIGHT, help="bytes")
    args = parser.parse_args()
    transfer.IN_FLIGHT = args.in_flight
    data = os.urandom(BLOCK)
    with tempfile.TemporaryDirectory(prefix="sftp-bench-") as tmp:
        service = start_sshd(Path(tmp))
        try:
            print(f"{args.mib} MiB, best of {args.rounds}; {transfer.IN_FLIGHT} bytes in flight")
            print("   request  depth  write MiB/s  read MiB/s  write CPU ms/MiB  read CPU ms/MiB")
            for chunk in (32 * 1024, 64 * 1024, 128 * 1024, 256 * 1024):
                capabilities.MAX_CHUNK = chunk
                runs = [_run(service, args.mib, data) for _ in range(args.rounds)]
                write, read = max(r[0] for r in runs), max(r[1] for r in runs)
                write_cpu, read_cpu = min(r[2] for r in runs), min(r[3] for r in runs)
                print(
                    f"{chunk // 1024:>8} K {transfer.depth(chunk):>6} {write:>12.1f} "
                    f"{read:>11.1f} {write_cpu:>17.1f} {read_cpu:>16.1f}"
                )
        finally:
            service.stop()


if __name__ == "__main__":
    main()

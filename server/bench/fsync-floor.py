#!/usr/bin/env python3
"""The disk's floor for a durable audit log: how long one `fdatasync`
takes after a small overwrite inside a preallocated, already-written file
(which is what the audit writer does per group commit). Prints the
median, p90, p99, p99.9 and max over N commits.

    python3 server/bench/fsync-floor.py DIR [N]
"""
import os
import sys
import time

directory = sys.argv[1] if len(sys.argv) > 1 else "."
n = int(sys.argv[2]) if len(sys.argv) > 2 else 2000
size = 8 << 20  # the audit log preallocates this much
path = os.path.join(directory, f"fsync-floor-{os.getpid()}.bin")
fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
try:
    os.write(fd, b"\0" * size)  # written zeros, not fallocate: no extent
    os.fsync(fd)                # conversion on the measured commits
    line = b"x" * 300           # about one audit line
    took = []
    for i in range(n):
        os.pwrite(fd, line, (i * len(line)) % size)
        start = time.perf_counter()
        os.fdatasync(fd)
        took.append(time.perf_counter() - start)
finally:
    os.close(fd)
    os.unlink(path)
took.sort()
def at(q):
    return took[min(len(took) - 1, int(q * len(took)))] * 1e6
print(f"fdatasync of a 300-byte overwrite in {directory}, {n} commits: "
      f"p50 {at(0.5):.0f} µs, p90 {at(0.9):.0f} µs, p99 {at(0.99):.0f} µs, "
      f"p99.9 {at(0.999):.0f} µs, max {at(1.0):.0f} µs")

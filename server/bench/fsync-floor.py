#!/usr/bin/env python3
"""The disk's floor for a durable audit log: how long one `fdatasync`
takes after a small overwrite inside a preallocated, already-written file
(which is what the audit writer does per group commit). Prints the
median, p90, p99, p99.9 and max over N commits.

    python3 server/bench/fsync-floor.py DIR [N]
    python3 server/bench/fsync-floor.py DIR --seconds S

With --seconds, it commits about once a millisecond for S seconds (a
steady trickle, like a server's group commits, rather than a burst) and
also counts the commits over 5 and 50 ms and prints when the slow ones
came: a durable answer waits for its commit, so the disk's stalls are a
floor under the server's latency tail. Run it on an otherwise idle box
(e.g. under the shared CPU lock).
"""
import os
import sys
import time

directory = sys.argv[1] if len(sys.argv) > 1 else "."
seconds = None
n = 2000
if len(sys.argv) > 3 and sys.argv[2] == "--seconds":
    seconds = float(sys.argv[3])
elif len(sys.argv) > 2:
    n = int(sys.argv[2])
size = 8 << 20  # the audit log preallocates this much
path = os.path.join(directory, f"fsync-floor-{os.getpid()}.bin")
fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
slow = []  # (seconds into the run, milliseconds) of commits over 50 ms
try:
    os.write(fd, b"\0" * size)  # written zeros, not fallocate: no extent
    os.fsync(fd)                # conversion on the measured commits
    line = b"x" * 300           # about one audit line
    took = []
    began = time.monotonic()
    i = 0
    while (i < n) if seconds is None else (time.monotonic() - began < seconds):
        os.pwrite(fd, line, (i * len(line)) % size)
        start = time.perf_counter()
        os.fdatasync(fd)
        took.append(time.perf_counter() - start)
        if took[-1] > 0.05:
            slow.append((time.monotonic() - began, took[-1] * 1e3))
        i += 1
        if seconds is not None:
            time.sleep(0.001)
finally:
    os.close(fd)
    os.unlink(path)
took.sort()
def at(q):
    return took[min(len(took) - 1, int(q * len(took)))] * 1e6
print(f"fdatasync of a 300-byte overwrite in {directory}, {len(took)} commits: "
      f"p50 {at(0.5):.0f} µs, p90 {at(0.9):.0f} µs, p99 {at(0.99):.0f} µs, "
      f"p99.9 {at(0.999):.0f} µs, max {at(1.0):.0f} µs")
if seconds is not None:
    over5 = sum(1 for t in took if t > 0.005)
    print(f"over {seconds:.0f} s: {over5} commits over 5 ms, {len(slow)} over 50 ms")
    if slow:
        print("over 50 ms (s into the run: ms): "
              + ", ".join(f"{s:.1f}: {ms:.0f}" for s, ms in slow[:40])
              + (" ..." if len(slow) > 40 else ""))

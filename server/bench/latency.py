#!/usr/bin/env python3
"""Per-caller latency of a loadgen report.json, split into admitted answers
(2xx and 4xx: the server did the work) and shed ones (503), from the HDR
histograms loadgen stores per (caller, op, status class). The server bench
(overload.sh) prints it; the issue's targets are about admitted requests.

    python3 server/bench/latency.py report.json
"""
import base64
import json
import struct
import sys
import zlib
from collections import defaultdict

BATCH_OPS = {"batch_get", "batch_verify"}
WRITE_OPS = {"register", "update", "death"}


def zigzag_varints(data):
    """HdrHistogram's V2 counts: ZigZag LEB128 (up to 9 bytes)."""
    i, out = 0, []
    while i < len(data):
        value, shift = 0, 0
        for k in range(9):
            b = data[i]
            i += 1
            if k == 8:
                value |= b << shift
                break
            value |= (b & 0x7F) << shift
            shift += 7
            if not b & 0x80:
                break
        out.append((value >> 1) ^ -(value & 1))
    return out


def decode(text):
    """An encoded histogram as {value: count} (value = bucket's lowest)."""
    raw = base64.b64decode(text)
    _cookie, length = struct.unpack(">ii", raw[:8])
    inner = zlib.decompress(raw[8 : 8 + length])
    _c, payload_len, _offset, sig, lowest, _highest, _ratio = struct.unpack(">iiiiqqd", inner[:40])
    counts = zigzag_varints(inner[40 : 40 + payload_len])
    largest = 2 * 10**sig
    sub_bucket_count = 1 << (largest - 1).bit_length()
    half_magnitude = sub_bucket_count.bit_length() - 2
    half_count = sub_bucket_count // 2
    unit = max(lowest, 1).bit_length() - 1
    values, index = {}, 0
    for c in counts:
        if c < 0:
            index += -c
            continue
        if c:
            bucket = (index >> half_magnitude) - 1
            sub = (index & (half_count - 1)) + half_count
            if bucket < 0:
                sub -= half_count
                bucket = 0
            values[sub << (bucket + unit)] = values.get(sub << (bucket + unit), 0) + c
        index += 1
    return values


def quantile(values, q):
    total = sum(values.values())
    if total == 0:
        return 0
    seen = 0
    for v in sorted(values):
        seen += values[v]
        if seen >= q * total:
            return v
    return max(values)


def main(path):
    report = json.load(open(path))
    groups = defaultdict(dict)
    shed = defaultdict(int)
    for s in report["histograms"]["series"]:
        kind = "batch" if s["op"] in BATCH_OPS else "write" if s["op"] in WRITE_OPS else "single"
        if s["class"] == "5xx":
            shed[(s["caller"], kind)] += s["count"]
            shed[("ALL", kind)] += s["count"]
            continue
        if s["class"] not in ("2xx", "4xx"):
            continue
        for key in ((s["caller"], kind), ("ALL", kind)):
            for v, c in decode(s["histogram"]).items():
                groups[key][v] = groups[key].get(v, 0) + c
    print(f"{'caller':24} {'kind':7} {'admitted':>9} {'p50_ms':>8} {'p99_ms':>8} {'p999_ms':>8} {'max_ms':>8} {'5xx':>8}")
    for key in sorted(groups, key=lambda k: (k[0] == "ALL", k)):
        v = groups[key]
        print(
            f"{key[0]:24} {key[1]:7} {sum(v.values()):9d} {quantile(v, .5)/1000:8.2f} "
            f"{quantile(v, .99)/1000:8.2f} {quantile(v, .999)/1000:8.2f} {max(v)/1000:8.2f} {shed[key]:8d}"
        )
    # When the per-second p99 (all answers) was over 50 ms: how long the
    # tail lasted around each peak, and when it came back.
    slow, spans = [], []
    for iv in report["intervals"]:
        if iv["completed"] and iv["p99_us"] > 50_000:
            slow.append(int(iv["t_s"]))
    for t in slow:
        if spans and t == spans[-1][1] + 1:
            spans[-1][1] = t
        else:
            spans.append([t, t])
    print("per-second p99 over 50 ms during: " + (", ".join(f"t={a}-{b} s" for a, b in spans) or "never"))
    s = report["summary"]
    print(
        f"summary: {s['requests']} requests, {s['requests_per_s']:.0f}/s, shed {s['shed']}, "
        f"errors {s['errors']}, unsent {s['unsent']}, p99 {s['p99_us']/1000:.2f} ms, "
        f"behind-schedule p99 {s['behind_schedule_p99_us']/1000:.2f} ms, generator {s['generator_cores']} cores"
    )


if __name__ == "__main__":
    main(sys.argv[1])

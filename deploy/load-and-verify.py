#!/usr/bin/env python3
"""Reads and retried writes through nginx while the cluster is disturbed.

For a deploy/local-cluster.sh cluster (CLUSTER_DIR as the script's):
registers a few citizens and waits until both followers have them, then
runs READERS threads reading those records through nginx (TLS, keep-alive)
and one writer registering citizens through nginx, each with its own
Idempotency-Key, retrying a 502/503/504 or a connection error with the same
key until it is acknowledged (201). Once they run it creates
STOP_FILE.started; it runs until the file STOP_FILE exists, then checks:

- no read failed (a non-200 or a connection error through nginx);
- every acknowledged write reads back, with its name, from the primary and
  from both followers directly (the followers catch up);
- the primary's last sequence grew by exactly the number of acknowledged
  writes: a retry never registered anyone twice.

Prints one JSON line (reads, writes, what the writer saw while writes were
refused, the longest write pause, the followers' catch-up time, reads and
writes per second of the run: the blips) and exits 1 if a check failed. Usage: load-and-verify.py STOP_FILE [READERS]
"""
import http.client
import json
import os
import ssl
import sys
import threading
import time

directory = os.environ.get("CLUSTER_DIR", "/tmp/dancu-cluster")
env = dict(line.strip().split("=", 1) for line in open(f"{directory}/env") if "=" in line)
stop_file = sys.argv[1]
readers = int(sys.argv[2]) if len(sys.argv) > 2 else 2
auth = {"Authorization": f"Bearer {env['ADMIN_KEY']}"}
tls = ssl.create_default_context(cafile=f"{directory}/tls/ca.crt")
run = f"{os.getpid()}-{int(time.time())}"
RETRYABLE = {502, 503, 504}
STARTED = time.monotonic()


def tick(per_second):
    """Counts one event in the current second of the run (the timeline)."""
    second = int(time.monotonic() - STARTED)
    per_second[second] = per_second.get(second, 0) + 1


def timeline(counters, seconds):
    return [sum(c.get(s, 0) for c in counters) for s in range(int(seconds) + 1)]


def nginx():
    return http.client.HTTPSConnection("127.0.0.1", int(env["NGINX_PORT"]), context=tls, timeout=30)


def direct(port_var):
    return http.client.HTTPConnection("127.0.0.1", int(env[port_var]), timeout=30)


def call(conn, method, path, body=None, headers=None):
    conn.request(method, path, body, {**auth, **(headers or {})})
    r = conn.getresponse()
    return r.status, dict(r.getheaders()), r.read()


def applied():
    """The primary's last durable sequence (the feed's X-Dancu-Applied)."""
    _, headers, _ = call(direct("PRIMARY_PORT"), "GET", "/v1/changes?after=0&limit=1")
    return int({k.lower(): v for k, v in headers.items()}["x-dancu-applied"])


def newborn(name):
    return json.dumps({
        "full_name": name, "date_of_birth": "2026-11-20", "sex": "male",
        "birth_registration_place": "Phường Láng Hạ, Quận Đống Đa, Hà Nội",
        "permanent_residence": "Số 1 Phố Huế, Hà Nội", "nationality": "VN", "ethnicity": "Kinh",
    })


def error_code(body):
    """dancu's error code, or who else answered (nginx's HTML page)."""
    try:
        return json.loads(body)["error"]["code"]
    except (ValueError, KeyError, TypeError):
        return "from-nginx" if body.lstrip().startswith(b"<html>") else "no-answer"


class Writer:
    """Registers citizens one after another, each retried until acknowledged."""

    def __init__(self):
        self.acknowledged = []  # (id, name)
        self.replayed = 0
        self.refusals = {}  # what the writer saw while writes were refused
        self.longest_pause_s = 0.0
        self.per_second = {}
        self.error = None

    def register(self, conn, i):
        key, name = f"restart-{run}-{i}", f"Bé Khởi Động {run} {i}"
        first_try = time.monotonic()
        while True:
            try:
                status, headers, body = call(conn, "POST", "/v1/citizens", newborn(name), {
                    "Idempotency-Key": key, "X-Change-Reason": "restart test",
                    "Content-Type": "application/json"})
            except (OSError, http.client.HTTPException) as e:
                status, body = type(e).__name__, b""
                conn.close()
                conn = nginx()
            if status == 201:
                self.longest_pause_s = max(self.longest_pause_s, time.monotonic() - first_try)
                self.acknowledged.append((json.loads(body)["id"], name))
                tick(self.per_second)
                self.replayed += headers.get("idempotent-replayed") == "true"
                return conn
            if status not in RETRYABLE and not isinstance(status, str):
                raise RuntimeError(f"write {i}: {status} {body[:200]!r}")
            seen = f"{status} {error_code(body)}"
            self.refusals[seen] = self.refusals.get(seen, 0) + 1
            if time.monotonic() - first_try > 60:
                raise RuntimeError(f"write {i} not acknowledged in 60 s (last {status})")
            time.sleep(0.05)

    def run(self):
        conn, i = nginx(), 0
        try:
            while not os.path.exists(stop_file):
                conn = self.register(conn, i)
                i += 1
        except Exception as e:  # reported in the summary
            self.error = str(e)


class Reader:
    def __init__(self, ids):
        self.ids, self.ok, self.failed, self.errors = ids, 0, 0, {}
        self.per_second = {}

    def run(self):
        conn, i = nginx(), 0
        while not os.path.exists(stop_file):
            cid = self.ids[i % len(self.ids)]
            i += 1
            try:
                status, _, _ = call(conn, "GET", f"/v1/citizens/{cid}")
            except (OSError, http.client.HTTPException) as e:
                status = type(e).__name__
                conn.close()
                conn = nginx()
            if status == 200:
                self.ok += 1
                tick(self.per_second)
            else:
                self.failed += 1
                self.errors[str(status)] = self.errors.get(str(status), 0) + 1


def readable(port_var, cid, name, deadline):
    conn = direct(port_var)
    while True:
        try:
            status, _, body = call(conn, "GET", f"/v1/citizens/{cid}")
            if status == 200:
                return json.loads(body)["full_name"] == name
        except (OSError, http.client.HTTPException):
            conn.close()
            conn = direct(port_var)
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)


def main():
    setup = Writer()
    conn = nginx()
    for i in range(5):
        conn = setup.register(conn, f"seed-{i}")
    deadline = time.monotonic() + 20
    for cid, name in setup.acknowledged:
        for f in ("F1_PORT", "F2_PORT"):
            if not readable(f, cid, name, deadline):
                sys.exit(f"{cid} never reached {f}")
    ids = [cid for cid, _ in setup.acknowledged]
    before = applied()
    writer, reading = Writer(), [Reader(ids) for _ in range(readers)]
    threads = [threading.Thread(target=t.run) for t in [writer, *reading]]
    global STARTED
    started = STARTED = time.monotonic()
    for t in threads:
        t.start()
    open(f"{stop_file}.started", "w").close()
    for t in threads:
        t.join()
    seconds = time.monotonic() - started
    after = applied()
    # Catch-up: both followers hold the primary's last sequence.
    stopped = time.monotonic()
    for f in ("F1_PORT", "F2_PORT"):
        while json.loads(call(direct(f), "GET", "/readyz")[2]).get("applied", 0) < after:
            if time.monotonic() - stopped > 30:
                break
            time.sleep(0.02)
    catch_up_s = time.monotonic() - stopped
    # Every acknowledged write, with its name, on the primary and both followers.
    missing = {}
    for node in ("PRIMARY_PORT", "F1_PORT", "F2_PORT"):
        deadline = time.monotonic() + 30
        missing[node] = sum(not readable(node, cid, name, deadline) for cid, name in writer.acknowledged)
    summary = {
        "seconds": round(seconds, 1),
        "reads_ok": sum(r.ok for r in reading),
        "reads_failed": sum(r.failed for r in reading),
        "read_errors": {k: v for r in reading for k, v in r.errors.items()},
        "writes_acknowledged": len(writer.acknowledged),
        "writes_replayed": writer.replayed,
        "write_refusals_retried": writer.refusals,
        "longest_write_pause_s": round(writer.longest_pause_s, 2),
        "sequences_added": after - before,
        "missing_after": missing,
        "followers_caught_up_s": round(catch_up_s, 2),
        "reads_ok_per_s": timeline([r.per_second for r in reading], seconds),
        "writes_acknowledged_per_s": timeline([writer.per_second], seconds),
        "writer_error": writer.error,
    }
    print(json.dumps(summary))
    ok = (summary["reads_failed"] == 0 and writer.error is None
          and not any(missing.values())
          and after - before == len(writer.acknowledged)
          and len({cid for cid, _ in writer.acknowledged}) == len(writer.acknowledged))
    sys.exit(0 if ok else 1)


main()

#!/usr/bin/env python3
"""Replication latency of a deploy/local-cluster.sh cluster.

Writes N registrations through nginx (TLS, one keep-alive connection) and,
after each 201, polls both followers directly until the new record reads
200. Prints p50/p99/max of (readable on every follower) - (201 received),
in ms. Usage: measure-replication.py [N] (CLUSTER_DIR as the script's).
"""
import http.client
import json
import os
import ssl
import sys
import time

directory = os.environ.get("CLUSTER_DIR", "/tmp/dancu-cluster")
env = dict(line.strip().split("=", 1) for line in open(f"{directory}/env") if "=" in line)
n = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
auth = {"Authorization": f"Bearer {env['ADMIN_KEY']}"}
nginx = http.client.HTTPSConnection(
    "127.0.0.1", int(env["NGINX_PORT"]), context=ssl._create_unverified_context()
)
followers = [http.client.HTTPConnection("127.0.0.1", int(env[p])) for p in ("F1_PORT", "F2_PORT")]
latencies = []
deadline_s = 10.0
for i in range(n):
    body = json.dumps({
        "full_name": f"Bé Đo {i}", "date_of_birth": "2026-11-20", "sex": "female",
        "birth_registration_place": "Phường Láng Hạ, Quận Đống Đa, Hà Nội",
        "permanent_residence": "Số 1 Phố Huế, Hà Nội", "nationality": "VN", "ethnicity": "Kinh",
    })
    nginx.request("POST", "/v1/citizens", body, {**auth, "X-Change-Reason": "measure",
                                                  "Content-Type": "application/json"})
    r = nginx.getresponse()
    answer = r.read()
    if r.status != 201:
        sys.exit(f"write {i}: {r.status} {answer!r}")
    written = time.monotonic()
    cid = json.loads(answer)["id"]
    for f in followers:
        while True:
            f.request("GET", f"/v1/citizens/{cid}", headers=auth)
            fr = f.getresponse()
            fr.read()
            if fr.status == 200:
                break
            if time.monotonic() - written > deadline_s:
                sys.exit(f"{cid} not on a follower after {deadline_s} s")
    latencies.append((time.monotonic() - written) * 1000)
latencies.sort()
pick = lambda q: latencies[min(len(latencies) - 1, int(q * len(latencies)))]
print(f"changes={n} replication_ms p50={pick(0.5):.2f} p99={pick(0.99):.2f} max={latencies[-1]:.2f}")

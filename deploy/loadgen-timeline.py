#!/usr/bin/env python3
"""The timeline of a deploy/loadgen-disturb.sh run, from loadgen's reports.

Usage: loadgen-timeline.py OUT AFTER F1_APPLIED F2_APPLIED

OUT holds reads/report.json and writes/report.json (two loadgen processes
through nginx), events.txt (`UNIX_MS what` lines) and load-and-verify.json. AFTER is the primary's last sequence after the run;
F1_APPLIED and F2_APPLIED what the followers then held. The checker's
`sequences_added` spans both loadgen processes (its writer starts first and
stops last), so it must be at least loadgen's 201s plus its own
acknowledged writes.

Prints, per second of loadgen's run (its own report intervals): reads
answered 2xx and failed (5xx or no answer), the reads' p99, writes
acknowledged (201) and refused, and the disturbances of that second; then
one JSON summary. Exits 1 if a check failed: a read failed, the checker
found a write missing or failed, a follower is behind the primary, or the
primary holds fewer changes than were acknowledged.
"""
import json
import sys

out, after, f1, f2 = sys.argv[1], *map(int, sys.argv[2:5])
reads = json.load(open(f"{out}/reads/report.json"))
writes = json.load(open(f"{out}/writes/report.json"))
checker = json.load(open(f"{out}/load-and-verify.json"))
start_ms = reads["run"]["started_unix_ms"]
events = {}
for line in open(f"{out}/events.txt"):
    ms, what = line.rstrip("\n").split(" ", 1)
    events.setdefault(int((int(ms) - start_ms) // 1000), []).append(
        f"{what} @{(int(ms) - start_ms) / 1000:.1f}s")


def by_second(report):
    """Interval index (seconds since the reads' start) -> the interval."""
    shift = round((report["run"]["started_unix_ms"] - start_ms) / 1000)
    return {i["index"] + shift: i for i in report["intervals"]}


def failed(interval):
    """Answers other than 2xx and 4xx: 5xx and no answer (io)."""
    classes = interval["classes"]
    return sum(n for c, n in classes.items() if c not in ("2xx", "4xx"))


r, w = by_second(reads), by_second(writes)
print(f"{'s':>3} {'reads 2xx':>9} {'failed':>6} {'p99 ms':>7} {'writes 201':>10} {'refused':>7}  events")
for s in range(max([*r, *w]) + 1):
    ri, wi = r.get(s), w.get(s)
    print(f"{s:>3} {ri['classes'].get('2xx', 0) if ri else 0:>9} {failed(ri) if ri else 0:>6} "
          f"{(ri['p99_us'] / 1000 if ri else 0):>7.1f} "
          f"{wi['classes'].get('2xx', 0) if wi else 0:>10} {failed(wi) if wi else 0:>7}  "
          f"{'; '.join(events.get(s, []))}")


def totals(report):
    s = report["summary"]
    return {"requests": s["requests"], "statuses": report["statuses"], "errors": s["errors"],
            "p50_ms": s["p50_us"] / 1000, "p99_ms": s["p99_us"] / 1000, "max_ms": s["max_us"] / 1000}


loadgen_writes = writes["statuses"].get("201", 0)
summary = {
    "loadgen_reads": totals(reads),
    "loadgen_writes": totals(writes),
    "checker": {k: v for k, v in checker.items() if not k.endswith("_per_s")},
    "sequences_added": checker["sequences_added"],
    "acknowledged": loadgen_writes + checker["writes_acknowledged"],
    "applied": {"primary": after, "f1": f1, "f2": f2},
}
print(json.dumps(summary))
read_failures = sum(n for c, n in reads["statuses"].items() if not c.startswith(("2", "4")))
ok = (read_failures == 0 and checker["reads_failed"] == 0 and checker["writer_error"] is None
      and not any(checker["missing_after"].values())
      and f1 >= after and f2 >= after
      and checker["sequences_added"] >= summary["acknowledged"])
if not ok:
    print("loadgen-timeline: a check FAILED (reads failed, a write missing, a follower behind, "
          "or fewer changes than acknowledged)", file=sys.stderr)
sys.exit(0 if ok else 1)

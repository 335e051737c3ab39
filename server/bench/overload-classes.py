#!/usr/bin/env python3
"""Per-class views of an overload.sh run (issue 18: interactive traffic keeps
its tail at the peaks, bulk is shed first, the server recovers after a
peak).

    overload-classes.py split PROFILE BULK_CALLERS OUT_DIR
        Writes OUT_DIR/interactive.toml and OUT_DIR/bulk.toml: the profile
        with only the interactive callers, or only the bulk ones (names
        separated by commas), each caller's share rescaled so that the
        shares add up to 1 and the rate's `mean` scaled by the part's share,
        so that the two loadgen processes together send the profile.

    overload-classes.py peaks INTERACTIVE_REPORT BULK_REPORT [CAPACITY]
        Per peak of the run, from the two processes' report.json (their
        per-second intervals, aligned by wall clock): the offered rate, what
        was admitted (2xx/4xx) and shed (5xx, by class), the interactive
        p99 over the peak's seconds (its per-second histograms merged), and
        the recovery times. CAPACITY (requests/s) is the box's capacity for
        the mix, from `overload.sh` with FIND_CAPACITY=1; without it the
        rate at which the server began to shed on the way up is used.

A peak is a run of seconds whose offered rate (both processes' schedules)
is above 80 % of the run's highest (national-day: the 9-11 h and 14-16 h
hours). Recovery is the time from the last second of a peak to the first
second from which, for 5 s, no interactive request is shed or failed and
the interactive per-second p99 is back within 2x its median over the seconds
offered at most half the highest rate (and at least 5 ms: "normal p99");
"to 50 ms" is the same with the peak's own target (p99 <= 50 ms).

That window ends while the offered rate is still ~75 % of the highest: at
scale 3 about twice what the box can serve of the mix, so the "recovery"
after it also times the rest of the overload. "After overload" is measured
from where the issue puts it, the peak having passed: the last second of
the overload around the window (offered above the box's capacity for the
mix) to the first of 5 recovered seconds; if the next overload begins
within those 5 s, the recovered seconds up to it count ("never": not
before the next overload or the end of the run). Lingering
(a backlog, a stuck queue) shows there as it would in the window's
figure: the overload's end depends only on the offered rate, never on
what the server did. "int/cap" and "bulk/cap" are the peak's admitted
requests per second of each class over that class's share of the
capacity (its share of the offered rate): the admitted mix is lighter
than the offered one, bulk batches being shed first, so a single
requests-per-second ratio would flatter it; when both are at least 1 the
peak admitted more of each class than the box serves of the mix at its
capacity, whatever a request of either class costs.
"""
import json
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from latency import decode, quantile  # noqa: E402


def split(profile, bulk_names, out_dir):
    text = Path(profile).read_text()
    bulk = set(filter(None, bulk_names.split(",")))
    head, *blocks = re.split(r"(?m)^(?=\[\[callers\]\])", text)
    name = lambda b: re.search(r'(?m)^name *= *"([^"]*)"', b).group(1)  # noqa: E731
    share = lambda b: float(re.search(r"(?m)^share *= *([0-9.eE+-]+)", b).group(1))  # noqa: E731
    for part, keep in (("interactive", lambda b: name(b) not in bulk), ("bulk", lambda b: name(b) in bulk)):
        chosen = [b for b in blocks if keep(b)]
        total = sum(map(share, chosen))
        if not chosen:
            sys.exit(f"no {part} callers in {profile}")
        part_head = re.sub(r"(?m)^mean *= *([0-9.eE+-]+)",
                           lambda m: f"mean = {float(m.group(1)) * total!r}", head, count=1)
        part_blocks = [re.sub(r"(?m)^share *= *([0-9.eE+-]+)",
                              lambda m: f"share = {float(m.group(1)) / total!r}", b, count=1)
                       for b in chosen]
        Path(out_dir, f"{part}.toml").write_text(part_head + "".join(part_blocks))
        print(f"{part}: {', '.join(map(name, chosen))} ({total:.5f} of the requests)")


def by_second(report, start_ms):
    shift = round((report["run"]["started_unix_ms"] - start_ms) / 1000)
    return {i["index"] + shift: i for i in report["intervals"]}


def admitted(iv):
    return iv["classes"].get("2xx", 0) + iv["classes"].get("4xx", 0) if iv else 0


def shed(iv):
    return iv["classes"].get("5xx", 0) if iv else 0


def failed(iv):
    """No answer (timeouts, resets): neither admitted nor shed."""
    return iv["classes"].get("io", 0) if iv else 0


def recovery_s(seconds, peak_end, recovered):
    """Seconds from a peak's last second to the first of 5 recovered ones."""
    after = [s for s in seconds if s > peak_end and all(recovered.get(t, True) for t in range(s, s + 5))]
    return (after[0] - peak_end - 1) if after else None


def shedding_onset(seconds, offered, i_s, b_s, first_peak):
    """The offered rate of the first of 3 seconds in a row with requests
    shed, before the first peak: the mix's capacity as this run saw it on
    its way up (before any backlog could build)."""
    sheds = [s for s in seconds if s < first_peak and shed(i_s.get(s)) + shed(b_s.get(s)) > 0]
    for s in sheds:
        if s + 1 in sheds and s + 2 in sheds:
            return offered[s]
    return None


def after_overload_s(seconds, overload_end, recovered, overloaded):
    """Seconds from an overload's last second to the first second that
    starts 5 recovered ones (or recovered ones up to the next overload);
    None if none does before the next overload or the run's end."""
    for s in seconds:
        if s <= overload_end:
            continue
        if overloaded[s]:
            return None
        span = []
        for t in range(s, s + 5):
            if t not in recovered or overloaded.get(t, False):
                break
            span.append(t)
        if span and all(recovered[t] for t in span):
            return s - overload_end - 1
    return None


def peaks(interactive_path, bulk_path, capacity=None):
    inter, bulk = (json.load(open(p)) for p in (interactive_path, bulk_path))
    start_ms = inter["run"]["started_unix_ms"]
    i_s, b_s = by_second(inter, start_ms), by_second(bulk, start_ms)
    seconds = range(min([*i_s, *b_s]), max([*i_s, *b_s]) + 1)
    offered = {s: (i_s[s]["target_rate"] if s in i_s else 0) + (b_s[s]["target_rate"] if s in b_s else 0)
               for s in seconds}
    highest = max(offered.values())
    quiet = sorted(i_s[s]["p99_us"] for s in seconds if s in i_s and offered[s] <= highest / 2)
    normal = max(2 * quiet[len(quiet) // 2], 5000) if quiet else 5000
    recovered = {s: shed(i_s.get(s)) + failed(i_s.get(s)) == 0 and (s not in i_s or i_s[s]["p99_us"] <= normal)
                 for s in seconds}
    windows, current = [], None
    for s in seconds:
        if offered[s] > 0.8 * highest:
            current = [s, s] if current is None else [current[0], s]
        elif current is not None:
            windows.append(current)
            current = None
    if current is not None:
        windows.append(current)
    source = "given"
    if capacity is None and windows:
        capacity, source = shedding_onset(seconds, offered, i_s, b_s, windows[0][0]), "shedding began on the way up"
    print(f"highest offered {highest:.0f}/s; normal interactive p99 <= {normal / 1000:.1f} ms; "
          + (f"capacity for the mix {capacity:.0f}/s ({source})" if capacity else "capacity for the mix unknown"))
    overloaded = {s: capacity is not None and offered[s] > capacity for s in seconds}
    print(f"{'peak s':>9} {'offered/s':>9} {'admitted':>9} {'shed int':>8} {'shed bulk':>9} "
          f"{'failed':>7} {'int p99 ms':>10} {'int max ms':>10} {'recovery s':>10} {'to 50 ms':>8} "
          f"{'overload s':>10} {'after it s':>10} {'int/cap':>7} {'bulk/cap':>8}")
    out = []
    for a, b in windows:
        span = range(a, b + 1)
        merged = {}
        for s in span:
            if s in i_s:
                for v, c in decode(i_s[s]["histogram"]).items():
                    merged[v] = merged.get(v, 0) + c
        recovery = recovery_s(seconds, b, recovered)
        under_target = recovery_s(seconds, b, {
            s: shed(i_s.get(s)) + failed(i_s.get(s)) == 0 and (s not in i_s or i_s[s]["p99_us"] <= 50_000)
            for s in seconds})
        end = b
        while overloaded.get(end + 1, False):
            end += 1
        after = after_overload_s(seconds, end, recovered, overloaded) if overloaded.get(b) else None
        def over_capacity(part):
            """This class's admitted per second over its share of the capacity."""
            share = sum(part[s]["target_rate"] for s in span if s in part) / sum(offered[s] for s in span)
            per_s = sum(admitted(part.get(s)) for s in span) / len(span)
            return per_s / (capacity * share) if capacity and share else None
        row = {
            "seconds": [a, b], "overload_ends": end if overloaded.get(b) else None,
            "recovery_after_overload_s": after,
            "interactive_over_capacity": over_capacity(i_s),
            "bulk_over_capacity": over_capacity(b_s),
            "offered_per_s": round(max(offered[s] for s in span)),
            "admitted": sum(admitted(i_s.get(s)) + admitted(b_s.get(s)) for s in span),
            "shed_interactive": sum(shed(i_s.get(s)) for s in span),
            "shed_bulk": sum(shed(b_s.get(s)) for s in span),
            "failed": sum(failed(i_s.get(s)) + failed(b_s.get(s)) for s in span),
            "interactive_p99_ms": quantile(merged, 0.99) / 1000 if merged else 0,
            "interactive_max_ms": max(merged) / 1000 if merged else 0,
            "recovery_s": recovery,
            "recovery_to_50ms_s": under_target,
        }
        out.append(row)
        print(f"{f'{a}-{b}':>9} {row['offered_per_s']:>9} {row['admitted']:>9} {row['shed_interactive']:>8} "
              f"{row['shed_bulk']:>9} {row['failed']:>7} {row['interactive_p99_ms']:>10.1f} {row['interactive_max_ms']:>10.1f} "
              f"{'never' if recovery is None else recovery:>10} "
              f"{'never' if under_target is None else under_target:>8} "
              f"{end if overloaded.get(b) else '-':>10} {'never' if after is None else after:>10} "
              f"{row['interactive_over_capacity'] or 0:>7.2f} {row['bulk_over_capacity'] or 0:>8.2f}")
    print(json.dumps({"highest_offered_per_s": round(highest), "normal_p99_ms": normal / 1000,
                      "capacity_per_s": capacity, "capacity_source": source, "peaks": out}))


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "split":
        split(*sys.argv[2:])
    elif len(sys.argv) in (4, 5) and sys.argv[1] == "peaks":
        peaks(sys.argv[2], sys.argv[3], float(sys.argv[4]) if len(sys.argv) == 5 else None)
    else:
        sys.exit(__doc__)

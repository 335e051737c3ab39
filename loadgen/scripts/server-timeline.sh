#!/usr/bin/env bash
# A server's connections and CPU per thread over time, every half second,
# until it exits: where a burst's connections and work went.
#
#   loadgen/scripts/server-timeline.sh PID PORT > TIMELINE
#
# Each line: seconds since start, established connections on PORT, then per
# runtime thread (dancu-worker-N, dancu-accept, dancu-batch-N) and for the
# newest dancu-loadgen process its CPU over the last half second, in % of a
# core. dancu's per-core runtimes share connections by SO_REUSEPORT's hash;
# a runtime near 100 % beside one near 0 is the load on one core.
set -uo pipefail
pid=$1 port=$2
declare -A last
start=$(date +%s%N)
hz=$(getconf CLK_TCK)
# Appends NAME=CPU % of one core since KEY's previous sample to $line.
add() {
    local name=$1 key=$2 ticks=$3 prev=${last[$2]:-$3}
    last[$key]=$ticks
    line+=" $name=$(( (ticks - prev) * 200 / hz ))"
}
while kill -0 "$pid" 2>/dev/null; do
    line=""
    for task in /proc/"$pid"/task/*; do
        name=$(cat "$task/comm" 2>/dev/null) || continue
        case $name in dancu-worker* | dancu-accept | dancu-batch*) ;; *) continue ;; esac
        ticks=$(awk '{print $14 + $15}' "$task/stat" 2>/dev/null) || continue
        add "$name" "${task##*/}" "$ticks"
    done
    gen=$(pgrep -n -x dancu-loadgen)
    if [ -n "$gen" ] && ticks=$(awk '{print $14 + $15}' "/proc/$gen/stat" 2>/dev/null); then
        add loadgen "gen$gen" "$ticks"
    fi
    conns=$(ss -Htn state established "( sport = :$port )" 2>/dev/null | wc -l)
    now=$(date +%s%N)
    printf '%d.%d conns=%d%s\n' $(( (now - start) / 1000000000 )) $(( (now - start) / 100000000 % 10 )) "$conns" "$line"
    sleep 0.5
done

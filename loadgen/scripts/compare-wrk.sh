#!/usr/bin/env bash
# Closed-model maximum of dancu-loadgen against wrk on the same endpoint,
# same connections and threads, interleaved round by round in one run;
# prints every round and the medians.
#
#   KEY=dancu-demo-key loadgen/scripts/compare-wrk.sh URL ID CONNECTIONS THREADS SECONDS ROUNDS
#
# Both tools send `GET /v1/citizens/ID` (with `Authorization: Bearer $KEY`
# when KEY is set) on keep-alive connections. Needs wrk and a release build
# of dancu-loadgen (target/release/dancu-loadgen, or $LOADGEN).
set -euo pipefail
url=$1 id=$2 conns=$3 threads=$4 secs=$5 rounds=$6
lg=${LOADGEN:-target/release/dancu-loadgen}
keyfile=$(mktemp)
trap 'rm -f "$keyfile"' EXIT
echo "$id" > "$keyfile"
wrk_auth=() lg_auth=()
if [ -n "${KEY:-}" ]; then
    wrk_auth=(-H "Authorization: Bearer $KEY")
    lg_auth=(--key "$KEY")
fi
w_all=() l_all=()
for r in $(seq 1 "$rounds"); do
    w=$(wrk -t"$threads" -c"$conns" -d"${secs}s" "${wrk_auth[@]}" "$url/v1/citizens/$id" \
        | awk '/Requests\/sec/ {print $2}')
    l=$("$lg" --target "$url" "${lg_auth[@]}" --keys-id "$keyfile" --op get --max \
        -c "$conns" -t "$threads" -d "${secs}s" -q --json \
        | tail -1 | python3 -c 'import json,sys; d=json.loads(sys.stdin.read()); print(d["requests_per_s"], d["errors"], json.dumps(d["statuses"]))')
    echo "round $r: wrk $w req/s | dancu-loadgen $l (req/s, errors, statuses)"
    w_all+=("$w"); l_all+=("${l%% *}")
done
python3 - "${w_all[*]}" "${l_all[*]}" <<'PY'
import statistics, sys
w = [float(x) for x in sys.argv[1].split()]
l = [float(x) for x in sys.argv[2].split()]
mw, ml = statistics.median(w), statistics.median(l)
print(f"median: wrk {mw:.0f} req/s, dancu-loadgen {ml:.0f} req/s, ratio {ml / mw:.3f}")
PY

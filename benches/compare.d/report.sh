# Sourced by benches/compare: where its figures are kept, and the Markdown
# table and JSON made of them. A figure is a line `name<TAB>round<TAB>value`
# of $FIGURES; ROUND is the round being measured (0 outside rounds).

FIGURES="$TMP/figures.tsv"
: >"$FIGURES" >"$TMP/skipped" >"$TMP/warnings"
ROUND=0
declare -A NOW=() # name@round -> value

warn() {
  echo "WARNING: $*" >&2
  echo "$*" >>"$TMP/warnings"
}

# skip NAME REASON: leaves NAME out of the run and says why.
skip() {
  echo "SKIP $1: $2" >&2
  printf '%s\t%s\n' "$1" "$2" >>"$TMP/skipped"
  SKIP="$SKIP,$1"
}

enabled() { [[ ",$SKIP," != *",$1,"* ]]; }

mem_available_kb() { awk '/^MemAvailable:/ { print $2 }' /proc/meminfo; }

record() { # NAME VALUE
  if [ -z "$2" ]; then
    warn "no figure for $1 (round $ROUND)"
    return 0
  fi
  printf '%s\t%s\t%s\n' "$1" "$ROUND" "$2" >>"$FIGURES"
  NOW[$1@$ROUND]="$2"
}

# ratio NAME A B: records A / B when both were measured in this round.
ratio() {
  local a="${NOW[$2@$ROUND]:-}" b="${NOW[$3@$ROUND]:-}"
  if [ -z "$a" ] || [ -z "$b" ]; then return 0; fi
  record "$1" "$(awk -v a="$a" -v b="$b" 'BEGIN { if (b > 0) printf "%.3f", a / b }')"
}

# A number as people read it: 1.23 M, 85.1 k, 163.
human() {
  awk -v v="$1" 'BEGIN {
    if (v >= 1e6) printf "%.2f M", v / 1e6
    else if (v >= 1e4) printf "%.0f k", v / 1e3
    else if (v >= 1e3) printf "%.1f k", v / 1e3
    else if (v >= 100 || v == int(v)) printf "%.0f", v
    else printf "%.2f", v }'
}

whole() { printf '%.0f' "$1"; }
grouped() { sed ':a; s/\B[0-9]\{3\}\>/,&/; ta' <<<"$1"; }

declare -A MED=() LO=() HI=() COUNT=()
measured() { [ -n "$1" ] && [ -n "${MED[$1]:-}" ]; }

# cell NAME UNIT: the median, and the range when there were several rounds.
cell() {
  if ! measured "$1"; then
    echo "—"
    return 0
  fi
  local text
  local show=human
  if [[ "$2" == B* ]]; then show=whole; fi
  text="$($show "${MED[$1]}")${2:+ $2}"
  if [ "${COUNT[$1]}" -gt 1 ]; then
    local lo hi
    lo="$($show "${LO[$1]}")" hi="$($show "${HI[$1]}")"
    # "102–112 k" rather than "102 k–112 k".
    if [[ "$lo" == *" "* ]] && [ "${lo##* }" = "${hi##* }" ]; then lo="${lo% *}"; fi
    text="$text ($lo–$hi)"
  fi
  echo "$text"
}

row() { # WHAT DANCU UNIT PEER PEER_FIGURE PEER_UNIT RATIO
  # A row without dancu's figure, or without the peer it names, is left out.
  if ! measured "$2" || { [ -n "$4" ] && ! measured "$5"; }; then return 0; fi
  local r="—" peer="—"
  if measured "$7"; then r="$(printf '%.2f' "${MED[$7]}")"; fi
  if [ -n "$4" ]; then peer="$4: $(cell "$5" "$6")"; fi
  echo "| $1 | $(cell "$2" "$3") | $peer | $r |"
}

table() {
  echo "| what | dancu | beside it | dancu ÷ it |"
  echo "| --- | --- | --- | --- |"
  row "GET one record" get1.dancu req/s "floor" get1.floor req/s get1.dancu/floor
  row "GET, ×$PIPELINE pipelined" get16.dancu req/s "floor" get16.floor req/s get16.dancu/floor
  row "batchGet, $BATCH IDs a request" batchget.dancu records/s "floor GET" get1.floor req/s batchget.dancu/floor
  row "batchVerify, $BATCH claims a request" batchverify.dancu checks/s "floor GET" get1.floor req/s batchverify.dancu/floor
  row "one record by key" get1.dancu req/s "Redis GET" get1.redis req/s get1.dancu/redis
  row "one record by key, ×$PIPELINE in flight" get16.dancu req/s "Redis GET -P $PIPELINE" get16.redis req/s get16.dancu/redis
  row "one record by key" get1.dancu req/s "PostgreSQL SELECT by primary key" get1.postgres req/s get1.dancu/postgres
  row "one record by key, ×$PIPELINE in flight" get16.dancu req/s "PostgreSQL, pipelines of $PIPELINE" get16.postgres req/s get16.dancu/postgres
  row "bytes per record" bytes.dancu "B (snapshot)" "Redis used_memory" bytes.redis B bytes.dancu/redis
  row "bytes per record" bytes.dancu "B (snapshot)" "PostgreSQL table, TOAST and index" bytes.postgres B bytes.dancu/postgres
  row "engine: batched ID lookups, one thread" engine.batched_lookups_per_s lookups/s "random reads of the mapped file" engine.random_reads_per_s reads/s engine.batched/random
  row "engine: the same, huge pages" engine.batched_lookups_per_s_hugepages lookups/s "random reads of the copy" engine.random_reads_per_s_hugepages reads/s engine.batched/random.hugepages
  row "engine: one lookup, p50" engine.single_lookup_ns_p50 ns "" "" "" ""
  row "durable writes, $CONNS connections" writes.dancu PATCH/s "Redis SET, appendfsync always" writes.redis SET/s writes.dancu/redis
  row "durable writes, $CONNS connections" writes.dancu PATCH/s "PostgreSQL UPDATE, synchronous_commit on" writes.postgres UPDATE/s writes.dancu/postgres
}

# report: prints the table and what it was measured on; writes --json.
report() {
  ROUND=0
  ratio bytes.dancu/redis bytes.dancu bytes.redis
  ratio bytes.dancu/postgres bytes.dancu bytes.postgres
  jq -Rn '[inputs | split("\t") | {name: .[0], value: (.[2] | tonumber)}]
    | group_by(.name) | map({key: .[0].name, value: ([.[].value] as $v | ($v | sort) as $s | {
        median: (if ($s | length) % 2 == 1 then $s[($s | length - 1) / 2]
                 else ($s[($s | length) / 2 - 1] + $s[($s | length) / 2]) / 2 end),
        min: $s[0], max: $s[-1], rounds: $v})}) | from_entries' "$FIGURES" >"$TMP/figures.json"
  local name median lo hi n
  while IFS=$'\t' read -r name median lo hi n; do
    MED[$name]="$median" LO[$name]="$lo" HI[$name]="$hi" COUNT[$name]="$n"
  done < <(jq -r 'to_entries[] | [.key, .value.median, .value.min, .value.max, (.value.rounds | length)] | @tsv' "$TMP/figures.json")

  local wall=$((SECONDS - STARTED)) commit dirty="" model mem_gib
  commit="$(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
  if [ -n "$(git status --porcelain --untracked-files=no 2>/dev/null)" ]; then dirty=" (uncommitted changes)"; fi
  model="$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)"
  mem_gib="$(awk '/^MemTotal:/ { printf "%.0f", $2 / 1048576 }' /proc/meminfo)"
  {
    echo
    table
    echo
    local source="\`$SNAP\`"
    if [[ "$SNAP" == "$TMP"/* ]]; then source="synthetic, seed 1"; fi
    if measured bytes.json; then source="$source; $(whole "${MED[bytes.json]}") B of JSON a record"; fi
    echo "$(grouped "$RECORDS") citizens ($source);" \
      "medians of $ROUNDS × ${DURATION} s rounds, range in brackets; wrk -t2 -c$CONNS;" \
      "dancu \`--read-only --no-audit\` (reads), audit on (writes, as \`server/bench/writes.sh\`)."
    echo "$(date -u +%F), commit $commit$dirty, $(nproc) × $model, $mem_gib GiB, Linux $(uname -r)," \
      "load at start $LOAD_AT_START, $PROFILE build. \`$COMMAND\`: $((wall / 60)) min $((wall % 60)) s."
    while IFS=$'\t' read -r name why; do echo "- skipped $name: $why"; done <"$TMP/skipped"
    while read -r why; do echo "- warning: $why"; done <"$TMP/warnings"
  } | tee "$TMP/table.md"

  if [ -n "$JSON" ]; then
    jq -n --slurpfile figures "$TMP/figures.json" --rawfile table "$TMP/table.md" \
      --arg date "$(date -u +%FT%TZ)" --arg command "$COMMAND" --argjson wall_s "$wall" \
      --arg commit "$(git rev-parse HEAD 2>/dev/null || echo unknown)" --arg dirty "$dirty" \
      --arg profile "$PROFILE" --argjson cpus "$(nproc)" --arg cpu_model "$model" \
      --argjson mem_total_kb "$(awk '/^MemTotal:/ { print $2 }' /proc/meminfo)" --arg kernel "$(uname -r)" \
      --arg load "$LOAD_AT_START" --argjson citizens "$RECORDS" --arg snapshot "$SNAP" \
      --argjson snapshot_bytes "$SNAP_BYTES" --argjson rounds "$ROUNDS" --argjson duration_s "$DURATION" \
      --argjson connections "$CONNS" --argjson pipeline "$PIPELINE" --argjson batch "$BATCH" \
      --rawfile skipped "$TMP/skipped" --rawfile warnings "$TMP/warnings" '{
        date: $date, command: $command, wall_s: $wall_s, commit: $commit, dirty: ($dirty != ""),
        profile: $profile,
        machine: {cpus: $cpus, cpu_model: $cpu_model, mem_total_kb: $mem_total_kb, kernel: $kernel,
                  load_at_start: $load},
        setup: {citizens: $citizens, snapshot: $snapshot, snapshot_bytes: $snapshot_bytes,
                rounds: $rounds, duration_s: $duration_s, connections: $connections,
                pipeline: $pipeline, batch: $batch},
        figures: $figures[0],
        skipped: ($skipped | split("\n") | map(select(. != "") | split("\t") | {key: .[0], value: .[1]}) | from_entries),
        warnings: ($warnings | split("\n") | map(select(. != ""))),
        table: $table}' >"$JSON"
    echo "wrote $JSON" >&2
  fi
}
